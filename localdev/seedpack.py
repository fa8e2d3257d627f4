"""Seeds sent by content: a request names a seeds/ folder by the SHA-256 of its files; the agent keeps the
sets it was sent (a bounded number, least recently used out) and asks for the files (a tar) only when it
does not have that hash, so an unchanged folder crosses the network once. Two runners with one checkout
share one upload and one PostgreSQL template. Agents that share a registry share the sets too (kept in it,
up to SHARED_MAX each): an upload to one agent serves a create sent to another, as behind a load balancer.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import time
from pathlib import Path

from localdev.errors import BadInput

HASH_RE = re.compile(r"^[0-9a-f]{64}$")
MAX_BYTES = 1 << 30  # one seed set, packed
KEEP = 20  # seed sets the agent keeps
SHARED_MAX = 64 << 20  # larger sets stay with the agent they were sent to
SCHEMA = """
CREATE TABLE IF NOT EXISTS seed_sets (
    digest   text PRIMARY KEY,
    data     bytea NOT NULL,
    used_at  timestamptz NOT NULL DEFAULT now()
);
"""


def files(root: Path) -> list[Path]:
    """The files of a seeds folder, in a fixed order (dot-files and dot-folders skipped, as the loader does)."""
    root = Path(root)
    out = []
    for path in sorted(root.rglob("*")):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        if path.is_symlink():
            raise BadInput(f"{path}: a symbolic link in the seeds folder; copy the file instead")
        if path.is_file():
            out.append(path)
    return out


def tree_hash(root: Path) -> str:
    """SHA-256 of a seeds folder's content: every file's relative name and bytes, in order."""
    root = Path(root)
    digest = hashlib.sha256()
    for path in files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def pack(root: Path) -> bytes:
    """A tar of the folder's files (names relative, no times, owners or modes), for upload."""
    import tarfile  # only when an upload is needed: it costs a CLI process tens of ms

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in files(root):
            info = tarfile.TarInfo(path.relative_to(root).as_posix())
            info.size, info.mode = path.stat().st_size, 0o644
            with open(path, "rb") as fh:
                tar.addfile(info, fh)
    data = buf.getvalue()
    if len(data) > MAX_BYTES:
        raise BadInput(f"{root}: the seeds are {len(data) >> 20} MiB packed; at most {MAX_BYTES >> 20} MiB can be sent")
    return data


class SharedSeeds:
    """Seed sets in the registry (table seed_sets), for every agent that shares it; the newest KEEP stay."""

    def __init__(self, pool):
        self.pool = pool  # () -> the registry's connection pool

    def load(self, digest: str) -> bytes | None:
        with self.pool().connection() as conn:
            row = conn.execute("UPDATE seed_sets SET used_at = now() WHERE digest = %s RETURNING data",
                               (digest,)).fetchone()
        return bytes(row[0]) if row else None

    def save(self, digest: str, data: bytes) -> None:
        if len(data) > SHARED_MAX:
            return
        with self.pool().connection() as conn:
            conn.execute("INSERT INTO seed_sets (digest, data) VALUES (%s, %s) ON CONFLICT (digest) "
                         "DO UPDATE SET used_at = now()", (digest, data))
            conn.execute("DELETE FROM seed_sets WHERE digest NOT IN "
                         "(SELECT digest FROM seed_sets ORDER BY used_at DESC LIMIT %s)", (KEEP,))


class SeedStore:
    """The agent's side: seed sets under LOCALDEV_HOME/seeds/<sha256>/, each extracted and checked once;
    with `shared`, also those another agent on the same registry was sent."""

    def __init__(self, root: Path, keep: int = KEEP, shared: SharedSeeds | None = None):
        self.root = root
        self.keep = keep
        self.shared = shared

    def path(self, digest: str) -> Path | None:
        """The extracted set for `digest`, marked as just used; None if no agent has it."""
        folder = self._local(digest)
        if folder is None and self.shared is not None:
            data = self.shared.load(digest)
            if data is not None:
                return self._extracted(digest, data)
        return folder

    def _local(self, digest: str) -> Path | None:
        if not HASH_RE.fullmatch(digest or ""):
            raise BadInput(f"invalid seeds hash {digest!r}: expected 64 hex digits (sha256)")
        folder = self.root / digest
        if not folder.is_dir():
            return None
        now = time.time()
        os.utime(folder, (now, now))
        return folder

    def put(self, digest: str, data: bytes) -> Path:
        """Extract `data` (a plain tar of files) and keep it if its content is what `digest` names."""
        folder = self._extracted(digest, data)
        if self.shared is not None:
            self.shared.save(digest, data)
        return folder

    def _extracted(self, digest: str, data: bytes) -> Path:
        if self._local(digest) is not None:
            return self.root / digest
        if len(data) > MAX_BYTES:
            raise BadInput(f"the seeds upload is over {MAX_BYTES >> 20} MiB")
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".{digest}.{os.getpid()}.{time.monotonic_ns()}.tmp"
        try:
            _extract(data, staging)
            if tree_hash(staging) != digest:
                raise BadInput("the seeds upload does not match its hash: it was changed or cut off on the way")
            os.replace(staging, self.root / digest)
        except OSError:
            if not (self.root / digest).is_dir():  # not a concurrent upload of the same set that won
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self._prune()
        return self.root / digest

    def _prune(self) -> None:
        sets = sorted((p for p in self.root.iterdir() if HASH_RE.fullmatch(p.name)), key=lambda p: p.stat().st_mtime)
        for old in sets[:-self.keep]:
            shutil.rmtree(old, ignore_errors=True)


def _extract(data: bytes, dest: Path) -> None:
    import tarfile

    from localdev.tarfiles import UnsafeArchive, extract

    dest.mkdir(parents=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            extract(tar, dest, "the seeds archive")
    except UnsafeArchive as exc:
        raise BadInput(str(exc)) from None
    except tarfile.TarError as exc:
        raise BadInput(f"the seeds upload is not a tar archive: {exc}") from None
