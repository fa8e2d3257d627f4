"""How redis-server is obtained: the system's package natively (Debian's redis-server, installed by
scripts/bootstrap.sh as root), the official image for containers. localdev downloads and builds nothing.

The namespace design needs Redis 7.0 or later: ACL checks on the keys a script touches, and selectors,
arrived in 7.0 (docs/redis.md).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from localdev.errors import BadInput, LocalDevError

DEBIAN_PACKAGES = ("redis-server", "redis-tools")
# docker-library's Debian variant of the same release Debian 12 ships (tags 7.0.15, 7.0.15-bookworm).
IMAGE = "redis:7.0.15-bookworm"
MINIMUM = (7, 0)


class RedisNotFound(LocalDevError):
    pass


def find_server(configured: str = "") -> Path:
    """The configured `bin`, else redis-server on PATH, else Debian's path."""
    if configured:  # what the user named, or an error: never silently another server
        path = Path(configured).expanduser()
        if path.is_file():
            return path
        raise BadInput(f"[services.redis] bin = {configured!r}: no such file; point it at a redis-server "
                       "executable, or remove it to use the one on PATH")
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    if Path("/usr/bin/redis-server").is_file():  # PATH without /usr/bin (a service manager's)
        return Path("/usr/bin/redis-server")
    raise RedisNotFound("no redis-server found on PATH: install it (Debian/Ubuntu: apt-get install redis-server, "
                        "or run scripts/bootstrap.sh as root; macOS: brew install redis), or set [services.redis] bin")


def server_version(server: Path) -> tuple[int, ...]:
    out = subprocess.run([str(server), "--version"], capture_output=True, text=True, timeout=10).stdout
    match = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    if not match:
        raise RedisNotFound(f"{server} --version printed {out.strip()!r}: not a redis-server")
    return tuple(int(g) for g in match.groups())


def check_version(server: Path) -> tuple[int, ...]:
    version = server_version(server)
    if version[:2] < MINIMUM:
        raise RedisNotFound(f"{server} is Redis {'.'.join(map(str, version))}; localdev needs 7.0 or later "
                            "(namespaces rely on ACL checks inside scripts): install a newer redis-server")
    return version


def missing_debian_packages() -> list[str]:
    """The server, and redis-cli, the client the docs and the tests use."""
    commands = ("redis-server", "redis-cli")
    return [pkg for pkg, command in zip(DEBIAN_PACKAGES, commands, strict=True) if not shutil.which(command)]
