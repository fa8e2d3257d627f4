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


@dataclass
class ProcessState:
    running: bool
    pid: int | None = None
    detail: str = ""  # e.g. "exited", "not started", "killed (pid 123 gone)"
    start_time: float | None = None  # the process's start time (epoch seconds), so a reused pid is not ours


class Runtime(Protocol):
    """What the cluster asks of a runtime; it never asks which runtime it has."""

    name: str  # "native" | "docker": recorded in cluster.json, told to services (some run on one only)

    def spec_for(self, service) -> ProcessSpec | ContainerSpec:
        """How this runtime runs `service` (its native_spec() or its container_spec())."""
        ...

    def prepare(self, service) -> None:
        """Everything a start of `service` needs first (binaries, data initialisation); idempotent."""
        ...

    def start(self, name: str, spec) -> int | None: ...
    def state(self, name: str) -> ProcessState: ...
    def stop(self, name: str, spec=None) -> None: ...
    def kill(self, name: str) -> None:
        """Without grace (tests, fault injection)."""
        ...

    def purge(self, service_names: list[str] | None = None) -> None:
        """Remove what the runtime itself keeps for the cluster (containers, volumes, networks)."""
        ...

    def log_path(self, name: str) -> Path | None: ...
    def logs(self, name: str, tail: int | None, follow: bool) -> Iterator[str]: ...
