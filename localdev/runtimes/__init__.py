"""Runtimes run services: `native.py` as supervised processes, `docker.py` as containers."""

import os


def docker_available() -> bool:
    """A reachable Docker Engine API (DOCKER_HOST or the default socket)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://") and not os.path.exists(host[len("unix://"):]):
        return False
    try:
        import docker  # optional extra
    except ImportError:
        return False
    try:
        docker.from_env(timeout=2).ping()
        return True
    except Exception:  # any failure to reach an engine means "not available"
        return False
