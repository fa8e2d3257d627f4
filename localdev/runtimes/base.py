"""What a runtime is given (specs) and what it reports (states). Runtimes know no particular service."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass
class ProcessSpec:
    """How to run a service as a native, supervised background process."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # added to the caller's environment
    cwd: Path | None = None
    user: str | None = None  # drop to this user (used when localdev runs as root)
    ports: list[int] = field(default_factory=list)  # must be free on the bind host before start
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 15.0  # then SIGKILL: some servers hang on SIGTERM


@dataclass
class ContainerSpec:
    """How to run a service as a container (Docker Engine API); also the source of compose/."""

    image: str
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    ports: dict[int, int] = field(default_factory=dict)  # container port -> host port (published on the bind host)
    volumes: dict[str, str] = field(default_factory=dict)  # volume name (per cluster) -> container path
    healthcheck: list[str] | None = None  # CMD form, for engines/compose that run healthchecks
    user: str | None = None
    publish_host: str | None = None  # where its ports are published, if not the bind host (behind the gateway)


@dataclass(frozen=True)
class Endpoint:
    """Where a service someone else runs is, and localdev's admin login there (runtime = "external").

    The password never comes from the config file (LOCALDEV_<SERVICE>_PASSWORD or `password_file`), and it is
    kept out of repr() and of `display`, so neither a log line nor an error message can carry it."""

    scheme: str
    host: str
    port: int
    user: str
    path: str = ""  # "/postgres": the database the admin connects to, where the scheme has one
    query: tuple[tuple[str, str], ...] = ()  # the url's parameters (TLS settings, auth source), in order
    password: str | None = field(default=None, repr=False)

    @property
    def display(self) -> str:
        """The url as configured (no password): for messages and `status`."""
        return self.url(password=False)

    def url(self, path: str | None = None, password: bool = True, user: bool = True,
            query: tuple[tuple[str, str], ...] | None = None) -> str:
        from urllib.parse import quote, urlencode

        login = ""
        if user and self.user:
            login = quote(self.user, safe="")
            if password and self.password is not None:
                login += ":" + quote(self.password, safe="")
            login += "@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        params = self.query if query is None else query
        tail = ("?" + urlencode(params, safe="/")) if params else ""
        path = self.path if path is None else path
        return f"{self.scheme}://{login}{host}:{self.port}{path or ('/' if tail else '')}{tail}"

    def params(self, drop: tuple[str, ...] = ()) -> tuple[tuple[str, str], ...]:
        """The url's parameters but those named in `drop` (case-insensitive), for a namespace's own url."""
        lowered = {d.lower() for d in drop}
        return tuple((k, v) for k, v in self.query if k.lower() not in lowered)


@dataclass
class ProcessState:
    running: bool
    pid: int | None = None
    detail: str = ""  # e.g. "exited", "not started", "killed (pid 123 gone)"
    start_time: float | None = None  # the process's start time (epoch seconds), so a reused pid is not ours


class Runtime(Protocol):
    """What the cluster asks of a runtime; it never asks which runtime it has."""

    name: str  # "native" | "docker" | "external": recorded in cluster.json, told to services

    def endpoint(self, name: str, options: dict) -> Endpoint | None:
        """Where service `name` is, if this runtime is told rather than deciding (external); None: where the
        service itself says (its bind host and port)."""
        ...

    def verify(self, service) -> None:
        """Before anything starts: refuse (BadInput) what this runtime cannot give `service`."""
        ...

    def spec_for(self, service) -> ProcessSpec | ContainerSpec:
        """How this runtime runs `service` (its native_spec() or its container_spec())."""
        ...

    def prepare(self, service) -> None:
        """Everything a start of `service` needs first (binaries, data initialisation); idempotent."""
        ...

    def start(self, name: str, spec) -> int | None: ...
    def state(self, name: str) -> ProcessState: ...

    def instance(self, name: str) -> str | None:
        """Which start of `name` is running, told without asking the server (a new answer at each restart);
        None where the runtime cannot tell so cheaply."""
        ...

    def stop(self, name: str, spec=None) -> None: ...
    def kill(self, name: str) -> None:
        """Without grace (tests, fault injection)."""
        ...

    def purge(self, service_names: list[str] | None = None) -> None:
        """Remove what the runtime itself keeps for the cluster (containers, volumes, networks)."""
        ...

    def log_path(self, name: str) -> Path | None: ...
    def logs(self, name: str, tail: int | None, follow: bool) -> Iterator[str]: ...
