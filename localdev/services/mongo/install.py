"""Obtaining FerretDB v1 (the MongoDB-compatible server) and mongosh (the shell the tests use).

FerretDB, in order: an explicit path (config `bin` / LOCALDEV_FERRETDB_BIN), the user cache, the
official release binary (users with internet), a build from the Go module proxy (CI machines
reach only package registries). The result is cached once per user.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import stat
import tempfile
from pathlib import Path

from localdev.services.install import ProvisionError, build_lock, cache_dir, download, progress, run, which

VERSION = "v1.24.2"
MODULE = "github.com/FerretDB/FerretDB"
RELEASE_URL = "https://github.com/FerretDB/FerretDB/releases/download/{version}/ferretdb-linux-{arch}"
MONGOSH_VERSION = "2.3.8"

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def ferretdb_binary(explicit: str | None = None, *, version: str = VERSION) -> Path:
    """Path of a runnable FerretDB binary, obtaining it if needed (may take minutes the first time)."""
    explicit = explicit or os.environ.get("LOCALDEV_FERRETDB_BIN")
    if explicit:
        path = Path(explicit).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ProvisionError(f"FerretDB binary {path} (config `bin` or LOCALDEV_FERRETDB_BIN) "
                                 "is not an executable file")
        return path
    target = cache_dir("ferretdb", version) / "ferretdb"
    if _usable(target):
        return target
    with build_lock(target):
        if _usable(target):  # another process finished it while we waited
            return target
        errors = []
        for attempt in (_from_release, _from_module_proxy):
            try:
                attempt(target, version)
                return target
            except ProvisionError as exc:
                errors.append(str(exc))
        raise ProvisionError(
            f"could not obtain FerretDB {version}: " + "; ".join(errors)
            + f". Put a FerretDB {version} binary at {target}, or point LOCALDEV_FERRETDB_BIN "
            "(or [services.mongo] bin) at one, or install Go so localdev can build it.")


def _usable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK) and path.stat().st_size > 1_000_000


def _install(built: Path, target: Path) -> None:
    built.chmod(built.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    tmp = target.with_name(target.name + ".new")
    shutil.copy2(built, tmp)
    os.replace(tmp, target)  # never a half-written binary at `target`


def _from_release(target: Path, version: str) -> None:
    arch = _ARCH.get(platform.machine().lower())
    if platform.system() != "Linux" or not arch:
        raise ProvisionError(f"no release binary for {platform.system()}/{platform.machine()}")
    progress(f"downloading FerretDB {version}")
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        part = download(RELEASE_URL.format(version=version, arch=arch), Path(tmp, "ferretdb"), timeout=30)
        if part.stat().st_size < 1_000_000:
            raise ProvisionError(f"the FerretDB {version} release download is not a binary")
        _install(part, target)


def _from_module_proxy(target: Path, version: str) -> None:
    go = which("go")
    if not go:
        raise ProvisionError("Go is not installed, so FerretDB cannot be built from source")
    progress(f"building FerretDB {version} from the Go module proxy (about 3-4 minutes, once)")
    info = json.loads(run([go, "mod", "download", "-json", f"{MODULE}@{version}"],
                          what="go mod download FerretDB", timeout=900))
    if not info.get("Dir"):
        raise ProvisionError(f"go mod download FerretDB {version}: {info.get('Error', 'no module directory')}")
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src = Path(tmp, "src")
        shutil.copytree(info["Dir"], src)  # the module cache is read-only
        for path in [src, *src.rglob("*")]:
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | stat.S_IWUSR)
        # the module zip lacks the version file FerretDB's build embeds (go:embed); without it
        # the binary panics at start
        (src / "build" / "version").mkdir(parents=True, exist_ok=True)
        (src / "build" / "version" / "version.txt").write_text(version + "\n")
        out = Path(tmp, "ferretdb")
        run([go, "build", "-trimpath", "-o", str(out), "./cmd/ferretdb"], cwd=src,
            env={**os.environ, "CGO_ENABLED": "0"}, what="go build FerretDB", timeout=1800)
        _install(out, target)


def mongosh_binary(version: str = MONGOSH_VERSION) -> Path:
    """Path of mongosh, installed from npm into the user cache (the tests' real MongoDB shell)."""
    root = cache_dir("mongosh", version)
    binary = root / "node_modules" / ".bin" / "mongosh"
    if binary.exists():
        return binary
    npm = which("npm")
    if not npm:
        raise ProvisionError("npm is not installed, so mongosh cannot be installed; install Node.js "
                             "(with npm) or mongosh itself")
    with build_lock(binary):
        if not binary.exists():
            progress(f"installing mongosh {version}")
            run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(root), f"mongosh@{version}"],
                what="npm install mongosh", timeout=900)
    if not binary.exists():
        raise ProvisionError(f"npm installed mongosh {version} but {binary} is missing")
    return binary
