"""Portable exports of a namespace: a seeds/ tree (the layout the seed loader validates) plus a manifest, as
one tar archive (zstd-compressed or plain), and the import that is a seeded create from it.

    manifest.json            format version, localdev and service versions, per-service counts and content
                             checksums, and the SHA-256 of every file below
    seeds/<service>/...      what each service's `export_namespace` wrote (see its export.py)

Both directions are streamed: each service writes its files one record at a time into a staging folder on
the agent's disk, the archive is made from that folder while it is sent, and an upload is written to disk
before it is read. Memory does not grow with the data; the agent's disk holds one copy (two for an import:
the archive and its extraction) while the command runs.

The archive is refused (BadInput, exit 2, nothing made) when it is cut off, when a file's SHA-256 differs
from the manifest's (changed after the export), when its format is newer than this localdev reads, when a
member is not a plain file or folder inside the archive, or when it holds data of a service the cluster
does not run. The file checksums catch damage, not an attacker, who can rewrite the manifest too.

After an import each service's content checksum is taken again and compared with the manifest's: a
namespace that does not hold what the archive holds is deleted and the import fails (never a silent
difference).
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from localdev.errors import BadInput, LocalDevError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SEEDS = "seeds"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CHUNK = 1 << 16
STAGING = "exports"  # under LOCALDEV_HOME: one folder per export or import being made


@dataclass
class Summary:
    """What a service holds for a namespace: counts for people, and a checksum of the content that does not
    depend on the order things were written in (equal data, equal checksum)."""

    counts: dict[str, int] = field(default_factory=dict)
    checksum: str = ""
    notes: list[str] = field(default_factory=list)  # what the export leaves out, said plainly

    def as_dict(self) -> dict:
        return {"counts": self.counts, "checksum": self.checksum, "notes": self.notes}


class Digest:
    """An order-independent checksum of a set of records: the sum of their SHA-256 values modulo 2^256.

    Good for telling equal content from different content (a test, a round trip); not a defence against
    someone forging a collision."""

    def __init__(self) -> None:
        self.total = 0
        self.count = 0

    def add(self, *parts: bytes | str) -> None:
        h = hashlib.sha256()
        for part in parts:
            data = part.encode() if isinstance(part, str) else part
            h.update(len(data).to_bytes(8, "big"))  # so ("ab", "c") and ("a", "bc") differ
            h.update(data)
        self.total = (self.total + int.from_bytes(h.digest(), "big")) % (1 << 256)
        self.count += 1

    def hexdigest(self) -> str:
        return f"{self.total:064x}"


def canonical(value) -> str:
    """JSON with sorted keys and no spaces: the same text for the same value, whatever the order it was built in."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


class JsonArrayWriter:
    """Writes a JSON array to a file one element per line, so the loaders' `file:line` name the element."""

    def __init__(self, fh: IO[str], prefix: str = "[", suffix: str = "]\n"):
        self.fh, self.suffix, self.first = fh, suffix, True
        fh.write(prefix + "\n")

    def add(self, text: str) -> None:
        self.fh.write(("" if self.first else ",\n") + text)
        self.first = False

    def close(self) -> None:
        self.fh.write(("" if self.first else "\n") + self.suffix)


@contextmanager
def json_array(path: Path | None, prefix: str = "[", suffix: str = "]\n") -> Iterator[JsonArrayWriter | None]:
    """A JsonArrayWriter on a new file at `path`, ended with its suffix only when the block succeeds (a failed
    export leaves a file no loader takes for whole). None when there is no path: a checksum-only pass reads the
    same data without writing it."""
    if path is None:
        yield None
        return
    with open(path, "w", encoding="utf-8") as fh:
        writer = JsonArrayWriter(fh, prefix, suffix)
        yield writer
        writer.close()


# -- making an export (on the agent) -----------------------------------------------------------------------
def staging_root(cluster) -> Path:
    root = cluster.state.home / STAGING
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    _remove_stale(root)
    return root


def _remove_stale(root: Path) -> None:
    """Folders of exports and imports whose process is gone (a killed agent) go with the next one."""
    for entry in root.iterdir():
        pid = entry.name.split(".")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def new_staging(cluster, what: str) -> Path:
    path = staging_root(cluster) / f"{os.getpid()}.{what}.{time.monotonic_ns()}"
    path.mkdir(mode=0o700)
    return path


def export_namespace(cluster, name: str, owner: str | None = None) -> Path:
    """Write namespace `name` as manifest + seeds/ into a new staging folder (the caller removes it)."""
    import localdev
    from localdev.services import in_waves

    ns, services = cluster.namespaces.namespace_for_export(name, owner)
    folder = new_staging(cluster, "export")
    try:
        seeds = folder / SEEDS
        seeds.mkdir()

        def one(service: str) -> Summary:
            svc = cluster.services[service]
            target = seeds / service
            target.mkdir()
            summary = svc.export_namespace(ns, target)
            if not any(target.iterdir()):
                target.rmdir()  # nothing of it: the loader needs no empty folder
            return summary

        summaries = in_waves(services, one)
        _importable(seeds, services)
        manifest = {
            "format_version": FORMAT_VERSION,
            "localdev_version": _localdev_version(localdev),
            "namespace": name,
            "created_at": time.time(),
            "services": {s: {"version": cluster.services[s].version(), **summaries[s].as_dict()} for s in services},
            "files": {path: digest for path, digest in _file_digests(folder)},
        }
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        return folder
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _importable(seeds: Path, services: list[str]) -> None:
    """Read the export back with the seed loader, so an archive that would not import is never handed out."""
    from localdev.seeding import load_fixtures

    try:
        load_fixtures(seeds, services)
    except BadInput as exc:
        raise LocalDevError(f"the export would not import again ({str(exc).replace(str(seeds), 'seeds')}): "
                            "please report this") from None


def _localdev_version(module) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("localdev")
    except PackageNotFoundError:
        return getattr(module, "__version__", "unknown")


def _file_digests(folder: Path) -> Iterator[tuple[str, str]]:
    for path in sorted((folder / SEEDS).rglob("*")):
        if path.is_file():
            yield path.relative_to(folder).as_posix(), sha256_file(path)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class _Pipe:
    """A file-like sink whose writes become chunks in a bounded queue: the archive is made as fast as it is
    sent, never held whole."""

    def __init__(self, depth: int = 16):
        self.chunks: queue.Queue = queue.Queue(depth)
        self.cancelled = threading.Event()
        self._pending = bytearray()

    def write(self, data) -> int:
        self._pending += data
        if len(self._pending) >= CHUNK:
            self._put(bytes(self._pending))
            self._pending.clear()
        return len(data)

    def flush(self) -> None:
        pass

    def _put(self, item) -> None:
        while not self.cancelled.is_set():
            try:
                self.chunks.put(item, timeout=0.5)
                return
            except queue.Full:
                continue
        raise BrokenPipeError("the receiver went away")

    def finish(self, error: BaseException | None = None) -> None:
        if self._pending and error is None:
            self._put(bytes(self._pending))
        self._pending.clear()
        try:
            self._put(error or b"")  # b"": the end
        except BrokenPipeError:
            pass


def archive_chunks(folder: Path, compress: bool) -> _Pipe:
    """Start writing the tar of `folder` (manifest first, then seeds/) into a pipe read by the sender."""
    pipe = _Pipe()

    def write() -> None:
        try:
            write_archive(folder, pipe, compress)
            pipe.finish()
        except BaseException as exc:  # the sender stops with it: a cut-off answer, never a short "success"
            pipe.finish(exc)

    threading.Thread(target=write, name="export-archive", daemon=True).start()
    return pipe


def write_archive(folder: Path, out, compress: bool) -> None:
    sink = out
    writer = None
    if compress:
        import zstandard

        writer = zstandard.ZstdCompressor(level=3).stream_writer(out, closefd=False)
        sink = writer
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path in [folder / MANIFEST, folder / SEEDS, *sorted((folder / SEEDS).rglob("*"))]:
            name = path.relative_to(folder).as_posix()
            info = tarfile.TarInfo(name)
            info.mtime = int(time.time())
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = path.stat().st_size, 0o644
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
    if writer is not None:
        writer.flush(__import__("zstandard").FLUSH_FRAME)
        writer.close()


# -- reading an archive (on the agent) ----------------------------------------------------------------------
def _reader(raw: IO[bytes]):
    magic = raw.read(4)
    raw.seek(0)
    return _Unzstd(raw) if magic == ZSTD_MAGIC else raw


class _Unzstd:
    """A zstd stream read as a file, which raises EOFError when the input ends inside a frame (zstandard's own
    stream reader ends quietly there, and a cut that only lost the tar's final padding would pass unseen).

    Memory stays bounded whatever the archive holds: the decompressor is fed PIECE bytes at a time, because
    the output of one call is all that its input expands to (an export compresses ~50x, and one 4-byte RLE
    block of a crafted archive stands for 128 KiB), and what was read is dropped by moving an offset, so a
    small read does not move the rest of the buffer."""

    PIECE = 64  # compressed bytes per call: at most 16 blocks, so at most 2 MiB out

    def __init__(self, raw: IO[bytes]):
        import zstandard

        self._new = zstandard.ZstdDecompressor().decompressobj
        self.raw, self.obj, self.buffer, self.pos = raw, self._new(), bytearray(), 0
        self.chunk, self.at = b"", 0  # the compressed chunk being fed and how much of it was

    def _feed(self) -> bool:
        """Decompress the next piece into the buffer; False at the end of the input."""
        if self.at >= len(self.chunk):
            self.chunk, self.at = self.raw.read(CHUNK), 0
            if not self.chunk:
                if not self.obj.eof:
                    raise EOFError("the compressed stream ends inside a frame")
                return False
        data = self.chunk[self.at:self.at + self.PIECE]
        self.at += len(data)
        while data:
            if self.obj.eof:  # the next frame
                self.obj = self._new()
            self.buffer += self.obj.decompress(data)
            data = self.obj.unused_data if self.obj.eof else b""
        return True

    def read(self, size: int = -1) -> bytes:
        if size < 0 or len(self.buffer) - self.pos < size:
            del self.buffer[:self.pos]  # only what is left unread moves, less than one read
            self.pos = 0
            while (size < 0 or len(self.buffer) < size) and self._feed():
                pass
        end = len(self.buffer) if size < 0 else min(self.pos + size, len(self.buffer))
        out = bytes(memoryview(self.buffer)[self.pos:end])
        self.pos = end
        return out


def read_manifest(archive: Path) -> dict:
    """The manifest of an archive just written (its first member), unchecked: for saying what it holds."""
    with open(archive, "rb") as raw, tarfile.open(fileobj=_reader(raw), mode="r|") as tar:
        member = tar.next()
        source = tar.extractfile(member) if member is not None and member.name == MANIFEST else None
        if source is None:
            raise LocalDevError(f"{archive}: the archive does not start with its {MANIFEST}")
        return json.loads(source.read())


def unpack(archive: Path, dest: Path, label: str) -> dict:
    """Extract `archive` into `dest` member by member (checked), then check it against its manifest.
    Returns the manifest; BadInput naming `label` for everything wrong with it."""
    from localdev.tarfiles import UnsafeArchive, extract

    try:
        with open(archive, "rb") as raw:
            source = _reader(raw)
            with tarfile.open(fileobj=source, mode="r|") as tar:
                extract(tar, dest, label)
            while source.read(CHUNK):  # tar stops at its end marker: read on, so a cut-off frame is seen
                pass
    except UnsafeArchive as exc:
        raise BadInput(str(exc)) from None
    except (tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise  # the disk, not the archive
        raise BadInput(f"{label}: not a complete localdev export: the archive is cut off or damaged ({exc})") from None
    except Exception as exc:  # zstandard.ZstdError: a cut-off or damaged compressed stream
        if type(exc).__module__.startswith("zstandard") or type(exc).__name__ == "ZstdError":
            raise BadInput(f"{label}: not a complete localdev export: the compressed stream is cut off or "
                           f"damaged ({exc})") from None
        raise
    return check(dest, label)


def check(folder: Path, label: str) -> dict:
    """The manifest of an extracted export, after checking its version and every file against it."""
    path = folder / MANIFEST
    if not path.is_file():
        raise BadInput(f"{label}: no {MANIFEST}: not a localdev export, or cut off before its first member")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"{label}: {MANIFEST} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("format_version"), int):
        raise BadInput(f"{label}: {MANIFEST} has no format_version: not a localdev export")
    version = manifest["format_version"]
    if version > FORMAT_VERSION:
        raise BadInput(f"{label}: made by a newer localdev (export format {version}; this one reads format "
                       f"{FORMAT_VERSION} and older): upgrade localdev to import it")
    if version < 1 or not isinstance(manifest.get("files"), dict) or not isinstance(manifest.get("services"), dict):
        raise BadInput(f"{label}: {MANIFEST} is malformed (format_version, services, files)")
    listed = manifest["files"]
    present = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
    present.pop(MANIFEST)
    missing = sorted(set(listed) - set(present))
    if missing:
        raise BadInput(f"{label}: {missing[0]} is listed in the manifest but missing: the archive is cut off or "
                       f"was changed ({len(missing)} file(s) missing)")
    extra = sorted(set(present) - set(listed))
    if extra:
        raise BadInput(f"{label}: {extra[0]} is not in the manifest: the archive was changed after the export")
    for name, expected in listed.items():
        if sha256_file(present[name]) != expected:
            raise BadInput(f"{label}: {name} does not match its SHA-256 in the manifest: the file was changed "
                           "or damaged after the export")
    return manifest


def check_services(manifest: dict, running: list[str], label: str) -> None:
    """Refuse an archive with data for a service this cluster does not run (it would be dropped unseen)."""
    for service, info in manifest["services"].items():
        if service not in running and any((info or {}).get("counts", {}).values()):
            raise BadInput(f"{label}: it holds {service} data and this cluster does not run {service}: enable "
                           f"[services.{service}] (then `localdev up`) to import it")


def import_archive(cluster, archive: Path, name: str, label: str, ttl="default", labels=None, owner=None,
                   restore: dict | None = None) -> dict:
    """A seeded create of `name` from the archive at `archive` (a file on the agent's disk), then the content
    checked against the manifest. `restore`: a backup's record of the namespace (secrets, region, expiry,
    owner, labels, connection budget) to create it as it was."""
    from localdev.agent import relabelled
    from localdev.names import validate_name

    validate_name(name)
    cluster.namespaces.check_free(name, restore)  # before the work of unpacking: a taken name is bad input
    folder = new_staging(cluster, "import")
    try:
        manifest = unpack(archive, folder, label)
        check_services(manifest, list(cluster.service_names), label)
        seeds = folder / SEEDS
        seeds.mkdir(exist_ok=True)
        kept = {}
        if restore:  # as it was: its secrets (so old credentials work), region, owner, labels, budget
            kept = {"secrets": restore["secrets"], "region": restore.get("region"),
                    "max_connections": restore.get("max_connections")}
            labels, owner = restore.get("labels") or {}, restore.get("owner")
        with relabelled(seeds, f"{label}:{SEEDS}"):
            info = cluster.namespaces.create(name, ttl=ttl, labels=labels, seed=True, seeds_dir=seeds, owner=owner,
                                             keep_seed_snapshot=False, **kept)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    changed = []
    if restore and restore.get("env"):
        try:
            changed = adopt(cluster, name, restore["env"])
        except BaseException:
            cluster.namespaces.delete(name, missing_ok=True)
            raise
    differs = compare(cluster, name, manifest)
    if differs:
        cluster.namespaces.delete(name, missing_ok=True)
        raise LocalDevError(f"importing {label} as {name!r} gave different data in {differs}: the namespace was "
                            "deleted again; please report this with the archive")
    info["imported"] = {s: v.get("counts", {}) for s, v in manifest["services"].items()}
    info["notes"] = [n for v in manifest["services"].values() for n in v.get("notes", [])] + changed
    return info


def adopt(cluster, name: str, env: dict) -> list[str]:
    """Each service makes its part of the restored namespace's env what the backup's `env` said; what could
    not be made so, in sentences."""
    ns, services = cluster.namespaces.namespace_for_export(name)
    notes = [cluster.services[service].adopt_env(ns, env) for service in services]
    return [note for note in notes if note]


def compare(cluster, name: str, manifest: dict) -> str:
    """'' if every service's content checksum equals the manifest's; else the services that differ."""
    ns, services = cluster.namespaces.namespace_for_export(name)
    differ = []
    for service in services:
        expected = (manifest["services"].get(service) or {}).get("checksum")
        if expected is None:
            continue  # the exporting cluster did not run it: the namespace starts empty there
        if cluster.services[service].checksum(ns).checksum != expected:
            differ.append(service)
    return ", ".join(differ)


def checksums(cluster, name: str, owner: str | None = None) -> dict:
    """Every service's Summary of namespace `name` (for `ns checksum`, tests and the DR drill)."""
    from localdev.services import in_waves

    ns, services = cluster.namespaces.namespace_for_export(name, owner)
    return {s: summary.as_dict() for s, summary in
            in_waves(services, lambda s: cluster.services[s].checksum(ns)).items()}
