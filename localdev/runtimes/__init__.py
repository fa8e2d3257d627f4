"""Runtimes run services: `native.py` as supervised processes, `docker.py` as containers."""

import os
from pathlib import Path


def _engine_sockets() -> list[Path]:
    """Where engines put their API socket when DOCKER_HOST is not set, most common first."""
    home = Path.home()
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR", f"/run/user/{os.getuid()}")
    return [Path("/var/run/docker.sock"),
            home / ".docker/run/docker.sock",              # Docker Desktop (macOS)
            home / ".colima/default/docker.sock",          # Colima
            home / ".colima/docker.sock",
            Path(runtime_dir) / "podman/podman.sock",      # rootless Podman's API service
            Path("/run/podman/podman.sock")]                # rootful Podman's API service


def engine_url() -> str:
    """The Docker Engine API to use: DOCKER_HOST, else the first engine socket that exists."""
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    for sock in _engine_sockets():
        if sock.exists():
            return f"unix://{sock}"
    return "unix:///var/run/docker.sock"


def docker_available() -> bool:
    """A reachable Docker Engine API (DOCKER_HOST or a default socket)."""
    host = engine_url()
    if host.startswith("unix://") and not os.path.exists(host[len("unix://"):]):
        return False
    try:
        import docker  # a dependency, imported only where the container runtime is asked about
    except ImportError:
        return False
    try:
        client = docker.DockerClient(base_url=host, timeout=2)
    except Exception:  # a malformed DOCKER_HOST, say
        return False
    try:
        return bool(client.ping())
    except Exception:  # any failure to reach an engine means "not available"
        return False
    finally:
        client.close()
