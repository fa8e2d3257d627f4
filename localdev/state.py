"""The state directory (LOCALDEV_HOME): where data, logs, pids, caches and secrets live."""

from __future__ import annotations

import json
import os
from pathlib import Path


def default_home() -> Path:
    env = os.environ.get("LOCALDEV_HOME")
    if not env:
        from platformdirs import user_data_dir  # filelock and platformdirs load lazily: the CLI rarely needs them

        return Path(user_data_dir("localdev", appauthor=False))
    return Path(env).expanduser().absolute()


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, atomically (never world-readable, not even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


class StateDir:
    """Layout of one cluster's state directory."""

    def __init__(self, home: Path | None = None):
        self.home = Path(home) if home else default_home()
        self._secrets: tuple[tuple[int, int, int] | None, dict] | None = None

    def ensure(self) -> StateDir:
        self.home.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o700)  # holds secrets and sockets
        for sub in ("data", "logs", "run", "cache"):
            (self.home / sub).mkdir(exist_ok=True)
        return self

    def data(self, name: str) -> Path:
        return self.home / "data" / name

    def run(self, name: str) -> Path:
        return self.home / "run" / name

    def log(self, name: str) -> Path:
        return self.home / "logs" / f"{name}.log"

    @property
    def cache(self) -> Path:
        return self.home / "cache"

    @property
    def cluster_file(self) -> Path:
        return self.home / "cluster.json"

    @property
    def agent_socket(self) -> Path:
        return self.home / "run" / "agent.sock"

    def lock(self, name: str = "cluster"):
        from filelock import FileLock

        (self.home / "run").mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.home / "run" / f"{name}.lock"))

    def busy(self) -> bool:
        """Whether another process holds the cluster lock: an `up` or `down` is at work (the agent, started
        beside the services by `up`, then leaves them alone until it is done)."""
        from filelock import Timeout

        lock = self.lock()
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return True
        lock.release()
        return False

    # cluster.json: what `up` started (runtime, services and their options), read by every later command
    def read_cluster(self) -> dict | None:
        try:
            return json.loads(self.cluster_file.read_text())
        except FileNotFoundError:
            return None

    def write_cluster(self, data: dict) -> None:
        write_private(self.cluster_file, json.dumps(data, indent=2, sort_keys=True))

    # secrets.json: admin credentials of the services, owner-only
    def secret(self, key: str, nbytes: int = 24) -> str:
        """The secret `key`, made on first use. What was read is kept while the file stays the same one
        (inode, size, mtime): the agent asks for the admin password at every admin connection, and the lock
        and the read cost more than the connection's own start."""
        path = self.home / "secrets.json"
        known = self._secrets
        if known is not None and key in known[1] and _identity(path) == known[0]:
            return known[1][key]
        with self.lock("secrets"):
            data = json.loads(path.read_text()) if path.exists() else {}
            if key not in data:
                from localdev.names import new_secret

                data[key] = new_secret(nbytes)
                write_private(path, json.dumps(data, indent=2))
            self._secrets = (_identity(path), data)
            return data[key]


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns
