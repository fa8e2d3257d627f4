"""What every drop-in class shares: a testcontainers-python 4.15 container's life (constructor, `start()`/`stop()`,
context manager, `get_container_host_ip()`, `get_exposed_port()`), backed by a namespace on the shared cluster.

`start()` leases a namespace (`localdev.connect().create(...)`, with a TTL, so a killed run leaves nothing the
agent does not reap); `stop()` deletes it. Arguments that only mean something for a private container (an
image tag, a fixed host port, a name, volumes, environment for the server...) are accepted and said once per
process (an `ArgumentIgnored` warning); what cannot be done without a container (`exec`, logs, the docker
client) is refused with `ContainerUnsupported`.
"""

from __future__ import annotations

import os
import secrets
import sys
import threading
import warnings
from types import TracebackType
from typing import Any, ClassVar, TypeVar

from localdev.errors import LocalDevError

Self = TypeVar("Self", bound="NamespaceContainer")

DEFAULT_TTL = "1h"
_said: set[str] = set()
_said_lock = threading.Lock()
_client: Any = None
_client_lock = threading.Lock()


class ArgumentIgnored(UserWarning):
    """An argument that makes no sense on a shared cluster: accepted, not applied, said once per process."""


class ContainerStartException(LocalDevError):
    """The namespace is not leased yet (testcontainers raises its own class of this name in the same places)."""


class ContainerUnsupported(LocalDevError):
    """An operation that needs a container of one's own (exec, logs, the docker client)."""


def say_once(message: str) -> None:
    with _said_lock:
        if message in _said:
            return
        _said.add(message)
    warnings.warn(message, ArgumentIgnored, stacklevel=_callers_level())


def _callers_level() -> int:
    """The stack level of the first frame outside this package: the user's line that gave the argument."""
    frame, level = sys._getframe(2), 2
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith(__package__ or "-"):
        frame, level = frame.f_back, level + 1
    return level


def connect():
    """The agent of the cluster this user is pointed at (LOCALDEV_URL / `localdev login`, else LOCALDEV_HOME's),
    started if it is the local one and it is not running, as the pytest plugin does (one `up` however many
    processes ask: `up` holds a file lock). One client per process."""
    global _client
    with _client_lock:
        if _client is None:
            from localdev import connect as connect_agent

            client = connect_agent()
            if not client.ping():
                if client.remote:
                    raise LocalDevError(f"the shared cluster at {client.url} does not answer")
                from localdev.cluster import Cluster

                cluster = Cluster(home=client.home)
                try:
                    cluster.up()
                finally:  # the agent serves this process from now on: keep no pool of our own open
                    cluster.close()
            _client = client
        return _client


class NamespaceContainer:
    """A testcontainers `DockerContainer` whose server is the shared cluster's; subclasses name the service."""

    service: ClassVar[str]  # the localdev service this class stands for ("postgres", "mongo", ...)
    default_image: ClassVar[str]
    server: ClassVar[str]  # how messages name the shared server ("PostgreSQL")

    def __init__(self, image: str, docker_client_kw: dict | None = None, command: str | None = None,
                 env: dict[str, str] | None = None, name: str | None = None, ports: list[int] | None = None,
                 volumes: list[tuple[str, str, str]] | None = None, network: Any = None,
                 network_aliases: list[str] | None = None, _wait_strategy: Any = None,
                 transferables: list | None = None, ttl: str | None = None, **kwargs: Any) -> None:
        self.image = image
        self.env: dict[str, str] = {}
        self.ports: dict[str, int | None] = {}
        self.ttl = ttl or os.environ.get("LOCALDEV_TESTCONTAINERS_TTL", DEFAULT_TTL)
        self._namespace: str | None = None
        self._ns_env: dict[str, str] = {}
        if image != self.default_image:
            self._ignored(f"image {image!r}", f"the namespace lives on the shared cluster's {self.server}, whatever "
                          "version it runs")
        for given, what in ((docker_client_kw, "docker_client_kw"), (command, "command"), (name, "name"),
                            (volumes, "volumes"), (network, "network"), (network_aliases, "network_aliases"),
                            (transferables, "transferables"), (kwargs, ", ".join(sorted(kwargs)))):
            if given:
                self._ignored(what, "there is no container of its own")
        if env:
            self.with_envs(**env)
        for port in ports or []:
            self.with_exposed_ports(port)

    def _ignored(self, what: str, why: str) -> None:
        say_once(f"localdev.testcontainers.{type(self).__name__}: {what} is not applied: {why}")

    # -- builders (testcontainers' with_* methods) ------------------------------------------------
    def with_env(self: Self, key: str, value: str) -> Self:
        self._ignored(f"environment variable {key}", f"the shared {self.server} is not configured per namespace")
        self.env[key] = value
        return self

    def with_envs(self: Self, **variables: str) -> Self:
        for key, value in variables.items():
            self.with_env(key, value)
        return self

    def with_env_file(self: Self, env_file) -> Self:
        self._ignored(f"env file {env_file}", f"the shared {self.server} is not configured per namespace")
        return self

    def with_exposed_ports(self: Self, *ports: str | int) -> Self:
        for port in ports:
            self.ports[str(port)] = None
        return self

    def with_bind_ports(self: Self, container: str | int, host: str | int | None = None) -> Self:
        if host is not None:
            self._ignored(f"host port {host} for {container}", "the shared cluster's port is the one "
                          f"get_exposed_port({container}) returns")
        self.ports[str(container)] = None
        return self

    def with_name(self: Self, name: str) -> Self:
        self._ignored("name", "there is no container of its own")
        return self

    def with_command(self: Self, command) -> Self:
        self._ignored("command", f"the shared {self.server} runs with the cluster's settings")
        return self

    def with_volume_mapping(self: Self, host, container: str, mode: str = "ro") -> Self:
        self._ignored(f"volume {container}", "there is no container of its own")
        return self

    def with_tmpfs_mount(self: Self, container_path: str, size: str | None = None) -> Self:
        self._ignored(f"tmpfs {container_path}", "there is no container of its own")
        return self

    def with_copy_into_container(self: Self, transferable, destination_in_container: str, mode: int = 0o644) -> Self:
        self._ignored(f"copy into {destination_in_container}", "there is no container of its own")
        return self

    def with_network(self: Self, network) -> Self:
        self._ignored("network", "a namespace joins no container network: reach it at get_container_host_ip()")
        return self

    def with_network_aliases(self: Self, *aliases: str) -> Self:
        self._ignored("network aliases", "a namespace joins no container network")
        return self

    def with_kwargs(self: Self, **kwargs: Any) -> Self:
        self._ignored(", ".join(sorted(kwargs)) or "kwargs", "there is no container of its own")
        return self

    def maybe_emulate_amd64(self: Self) -> Self:
        return self  # the platform of a server that is already running

    def waiting_for(self: Self, strategy) -> Self:
        return self  # start() returns once the namespace answers: there is nothing left to wait for

    # -- life ---------------------------------------------------------------------------------------
    def start(self: Self) -> Self:
        if self._namespace is not None:
            return self
        client = connect()
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        name = f"tc-{self.service}-{secrets.token_hex(4)}"
        info = client.create(name, ttl=self.ttl, labels=["owner=testcontainers", f"worker={worker}"],
                             with_env=True)
        if self.service not in info["services"]:
            client.delete(name, missing_ok=True)
            where = client.url or f"LOCALDEV_HOME={client.home}"
            raise LocalDevError(f"{type(self).__name__} needs {self.service}, which the localdev cluster ({where}) "
                                f"does not run: enable [services.{self.service}] in localdev.toml, then "
                                "`localdev down && localdev up`")
        self._namespace, self._ns_env = name, info["env"]
        self._leased()
        return self

    def _leased(self) -> None:
        """The namespace's settings are in self._ns_env: set the attributes testcontainers users read."""

    def stop(self, force: bool = True, delete_volume: bool = True) -> None:
        name, self._namespace = self._namespace, None
        if name is not None:
            connect().delete(name, missing_ok=True)

    def __enter__(self: Self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc_val: BaseException | None,
                 exc_tb: TracebackType | None) -> None:
        self.stop()

    @property
    def status(self) -> str:
        return "running" if self._namespace else "not_started"

    @property
    def namespace(self) -> str:
        """The localdev namespace that backs this container."""
        return self._started()

    def _started(self) -> str:
        if self._namespace is None:
            raise ContainerStartException("Container is not started")
        return self._namespace

    # -- accessors ------------------------------------------------------------------------------------
    def get_container_id(self) -> str:
        return self._started()

    def _endpoint(self) -> tuple[str, int]:
        """(host, port) where the namespace's server answers."""
        raise NotImplementedError

    def get_container_host_ip(self) -> str:
        self._started()
        return self._endpoint()[0]

    def get_exposed_port(self, port: int | str) -> int:
        name = self._started()
        if str(port) not in self.ports and f"{port}/tcp" not in self.ports:
            raise ConnectionError(f"Port mapping for container {name} and port {port} is not available")
        return self._endpoint()[1]

    def _no_container(self, what: str) -> ContainerUnsupported:
        return ContainerUnsupported(f"{type(self).__name__}.{what}: there is no container of its own (namespace "
                                    f"{self._namespace or '(not started)'} on the shared cluster's {self.server}); "
                                    "use the service's own client")

    def exec(self, command) -> Any:
        raise self._no_container("exec()")

    def get_logs(self) -> tuple[bytes, bytes]:
        raise self._no_container("get_logs()")

    def get_wrapped_container(self) -> Any:
        raise self._no_container("get_wrapped_container()")

    def get_docker_client(self) -> Any:
        raise self._no_container("get_docker_client()")

    def get_container_info(self) -> Any:
        raise self._no_container("get_container_info()")

    def copy_into_container(self, transferable, destination_in_container: str, mode: int = 0o644) -> None:
        raise self._no_container("copy_into_container()")

    def copy_from_container(self, source_in_container: str, destination_on_host) -> None:
        raise self._no_container("copy_from_container()")

    def wait(self) -> int:
        raise self._no_container("wait()")

    def reload(self) -> None:
        """Nothing to refresh: the namespace's settings do not change while it is leased."""


class AwsEndpoint(NamespaceContainer):
    """What the LocalStack and DynamoDB classes share: the namespace's credentials and region in boto3 clients."""

    def __init__(self, image: str, region_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(image, **kwargs)
        self._asked_region = region_name
        self.region_name = region_name or os.environ.get("AWS_DEFAULT_REGION", "us-west-1")

    def _leased(self) -> None:
        region = self._ns_env["AWS_REGION"]
        if self._asked_region and self._asked_region != region:
            # Deleting a namespace empties its own region: resources made elsewhere would outlive it.
            self._ignored(f"region_name {self._asked_region!r}", f"the namespace's resources live in {region}")
        self.region_name = region

    def _client(self, name: str, endpoint_url: str, kwargs: dict) -> Any:
        import boto3

        kwargs_ = {"endpoint_url": endpoint_url, "region_name": self.region_name,
                   "aws_access_key_id": self._ns_env["AWS_ACCESS_KEY_ID"],
                   "aws_secret_access_key": self._ns_env["AWS_SECRET_ACCESS_KEY"]}
        kwargs_.update(kwargs)
        return boto3.client(name, **kwargs_)


def split_url(url: str) -> tuple[str, int]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    assert parts.hostname and parts.port, url
    return parts.hostname, parts.port
