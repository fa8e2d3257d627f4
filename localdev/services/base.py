"""The shape every service has.

Adding a service means adding one package (ours live in localdev/services/<name>/) with a `Service`
subclass, registered under the ``localdev.services`` entry-point group. Everything about it is declared
here, by the service: its options, the env keys it puts into `ns env`, the secrets each namespace gets,
whether a restart loses state, its doctor checks, its pytest client fixtures and the system packages
its native runtime needs. The cluster, the runtimes, the registry, the CLI and the pytest plugin read
those declarations and know no particular service."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from localdev.agent_client import CA_FILE  # noqa: F401 (services take it from here)
from localdev.config import Option  # noqa: F401 (the services take it from here)
from localdev.errors import LocalDevError
from localdev.runtimes.base import ContainerSpec, Endpoint, ProcessSpec
from localdev.waiting import poll_until

if TYPE_CHECKING:
    from localdev.exports import Summary
    from localdev.names import Namespace
    from localdev.state import StateDir
    from localdev.tls import ServerCert
    from localdev.undo import Undo


@dataclass
class Check:
    """One line of `localdev doctor`."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Resources:
    """What a service's container asks of an orchestrator (the Kubernetes deployment, `localdev k8s`).

    Requests are what it needs idle with a few namespaces, limits what it may grow to under load; `storage` is
    each data volume's size. `fs_group`: the group its volumes must be writable by, for an image whose user is
    not root (a fresh volume there is root's, where a Docker named volume copies the image's ownership).
    `subdir`: keep the data one directory down the volume, for a server that refuses a non-empty data
    directory (a fresh filesystem's `lost+found`). The docker runtime and compose set no limits."""

    memory: str = "128Mi"
    memory_limit: str = "512Mi"
    cpu: str = "100m"
    cpu_limit: str = "1"
    storage: str = "1Gi"
    fs_group: int | None = None
    subdir: str = ""


@dataclass
class ServiceContext:
    state: StateDir
    host: str  # bind host; 127.0.0.1 unless the config says otherwise
    runtime: str  # "native" | "docker" | "external"
    options: dict  # this service's validated [services.<name>] table, defaults filled in
    services: dict = field(default_factory=dict)  # name -> Service, for services that need a sibling
    namespaces: dict = field(default_factory=dict)  # the config's [namespaces] table (the connection budget)
    advertise_host: str = ""  # the name clients elsewhere use (team mode); "" = host
    # The cluster's server certificate (made on first use), for a service that serves TLS beyond loopback.
    server_cert: Callable[[], ServerCert] | None = None
    # The registry's connection pool (the namespaces' table), for a service that records what a namespace owns.
    registry: Callable[[], Any] | None = None
    # runtime = "external": where the service is and localdev's admin login there; None: localdev runs it.
    endpoint: Endpoint | None = None
    # The running server's identity, a new one at each (re)start, where the runtime can tell (its process
    # and that process's start time); else None.
    instance: Callable[[], str | None] | None = None




def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


class NotReady(LocalDevError):
    pass


# The host a remote client reached the agent by, for the request being answered (team mode without an
# `advertise_host` in the config): the name env answers give the services.
ADVERTISED_HOST: ContextVar[str | None] = ContextVar("advertised_host", default=None)


@dataclass(frozen=True)
class Secret:
    """A secret every namespace gets, made at create and kept in the registry: `ns.secret(group, key)`.

    `group` is the service's name, unless services share credentials (DynamoDB Local and the AWS emulator
    both declare the "aws" group, so one key pair serves both endpoints)."""

    group: str
    key: str
    make: Callable[[], str]


@dataclass(frozen=True)
class PytestClient:
    """A client fixture the pytest plugin makes for users: `make(env)` yields the client, then cleans up.

    `env` is the namespace's `ns env`; the fixture skips when the cluster does not run the service."""

    name: str
    make: Callable[[dict], Iterator[Any]]
    scope: Literal["session", "package", "module", "class", "function"] = "session"
    doc: str = ""


class Service:
    name: ClassVar[str]
    default_port: ClassVar[int]
    options: ClassVar[dict[str, Option]] = {}  # beyond `enabled` and `port`, which every service has
    depends_on: ClassVar[tuple[str, ...]] = ()
    ready_timeout: ClassVar[float] = 60.0
    # Every key namespace_env may return: `ns env` is their union; a key not declared here is an error.
    env_keys: ClassVar[tuple[str, ...]] = ()
    secrets: ClassVar[tuple[Secret, ...]] = ()
    # True: its namespaces' state lives in memory, so after every (re)start each one is asked with
    # check_namespace() what it lost, and the registry records it for `status` and `ns list`.
    loses_state_on_restart: ClassVar[bool] = False
    # Non-empty: the service sits behind localdev's AWS gateway (localdev/gateway/), which owns its `port` and
    # forwards to it on a private loopback `backend_port`; the value is the API an unsigned request is refused as.
    behind_gateway: ClassVar[str] = ""
    backend_secret: ClassVar[str] = "test"  # what the gateway re-signs requests with for it
    # The url schemes `[services.<name>] url` may use (runtime = "external"), the first one in examples.
    url_schemes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, ctx: ServiceContext):
        self.ctx = ctx

    # -- where it lives -------------------------------------------------
    @property
    def port(self) -> int:
        endpoint = self.ctx.endpoint
        return endpoint.port if endpoint else int(self.ctx.options["port"])

    @property
    def backend_port(self) -> int:
        """Where the server itself listens: `port`, unless the gateway owns that (then a private port `up` chose)."""
        return int(self.ctx.options.get("backend_port") or 0) or self.port

    @property
    def bind_host(self) -> str:
        """Where the server itself binds: behind the gateway, only loopback (the gateway faces the network)."""
        return "127.0.0.1" if self.behind_gateway else self.ctx.host

    @property
    def host(self) -> str:
        """Where clients on this machine reach it (localdev's own admin connections)."""
        if self.ctx.endpoint:
            return self.ctx.endpoint.host
        return "127.0.0.1" if self.ctx.host in ("0.0.0.0", "::", "") else self.ctx.host

    @property
    def client_host(self) -> str:
        """Where a namespace's users reach it, as `ns env` names it: an external service's url host (everyone
        reaches it there), else the config's advertise_host, else the host a remote client reached the agent
        by, else `host`."""
        if self.ctx.endpoint:
            return self.ctx.endpoint.host
        return self.ctx.advertise_host or ADVERTISED_HOST.get() or self.host

    @property
    def where(self) -> str:
        """How messages name the service's location (an external url without its password)."""
        return self.ctx.endpoint.display if self.ctx.endpoint else f"{self.host}:{self.port}"

    def instance(self) -> str | None:
        """Which start of the server is running (see ServiceContext.instance): equal answers, no restart in
        between; None, nobody can tell."""
        return self.ctx.instance() if self.ctx.instance else None

    @property
    def data_dir(self) -> Path:
        return self.ctx.state.data(self.name)

    def option(self, key: str):
        return self.ctx.options[key]

    # -- running --------------------------------------------------------
    @property
    def tls(self) -> bool:
        """Whether it serves TLS: where it listens beyond loopback and can (see serves_tls)."""
        return not is_loopback(self.ctx.host) and self.serves_tls()

    def serves_tls(self) -> bool:
        """Whether this service, on this runtime, can serve TLS with the cluster's certificate."""
        return False

    def check_exposure(self) -> None:
        """Beyond loopback only with TLS, or with the config's explicit `allow_plaintext = true`."""
        if is_loopback(self.ctx.host) or self.serves_tls() or self.option("allow_plaintext"):
            return
        from localdev.errors import BadInput

        raise BadInput(f"host = {self.ctx.host!r}: {self.name} cannot serve TLS here, so its traffic would cross the "
                       f"network in plain text; keep host on loopback, or set [services.{self.name}] "
                       "allow_plaintext = true to accept that")

    def check(self) -> None:
        """Refuse a configuration this runtime cannot run (BadInput), before anything starts."""

    def check_endpoint(self) -> None:
        """runtime = "external", at every `up`, before the agent starts: a real round trip to the service at its
        url, and every privilege namespaces need there; BadInput naming what is missing. Services whose admin
        needs privileges (users, roles) override it."""
        if not self.ready():
            raise LocalDevError(f"{self.name} at {self.where} does not answer: check the url and that it runs")

    def postgres_admin_connections(self) -> int:
        """How many superuser PostgreSQL connections this service's own pools may hold: the PostgreSQL
        service reserves that many slots, so namespaces filling the server never starve them."""
        return 0

    def install(self) -> None:
        """Fetch or build this service's binaries into the user's cache (no per-cluster state; idempotent).

        `python -m localdev.provision` runs it for every service, so CI and new users warm the cache once."""

    def provision(self) -> None:
        """Everything the native runtime needs before a start: binaries, then data initialisation."""
        self.install()

    def native_spec(self) -> ProcessSpec:
        raise NotImplementedError

    def container_spec(self) -> ContainerSpec:
        raise NotImplementedError

    def container_resources(self) -> Resources:
        """Requests, limits and volume needs of its container_spec() on an orchestrator."""
        return Resources()

    def external_admin(self, host: str, port: int) -> tuple[str, str | None]:
        """How an agent on `runtime = "external"` reaches this service at host:port as its admin: the URL (a
        user, never a password), and which of the cluster's secrets is that admin's password (None: none)."""
        return f"http://{host}:{port}", None

    def ready(self) -> bool:
        """A real protocol round-trip; False (never an exception) while not ready."""
        raise NotImplementedError

    def after_ready(self) -> None:
        """One-time work after every start (bootstrap metadata, warm caches)."""

    def wait_ready(self, timeout: float | None = None, alive=lambda: True, check=None) -> None:
        """Until `check()` (default: this process's `ready()`) is true, while `alive()`."""
        from localdev.waiting import TimedOut

        timeout = timeout or self.ready_timeout
        try:  # polled every 0.1 s at most: `up` waits for the last service to answer, not a long sleep after it
            poll_until(check or self.ready, timeout, f"{self.name}", max_interval=0.1,
                       fail=lambda: None if alive() else f"{self.name} exited during start-up: "
                                                         f"see `localdev logs {self.name}`")
        except TimedOut:
            raise NotReady(f"{self.name} did not become ready on {self.host}:{self.port} within "
                           f"{timeout:.0f}s: see `localdev logs {self.name}`") from None
        except LocalDevError as exc:
            raise NotReady(str(exc)) from None

    def purge(self) -> None:
        """Remove this service's data (the cluster is stopped)."""
        import shutil

        shutil.rmtree(self.data_dir, ignore_errors=True)

    def doctor(self) -> list[Check]:
        return []

    def close(self) -> None:
        """Close warm clients."""

    def warm(self) -> None:
        """Pay, once the agent serves, the one-time costs of this process's first namespace request (client
        libraries loading their models): otherwise the first `ns create` after `up` pays them. Reads only."""

    def missing_debian_packages(self) -> list[str]:
        """The Debian packages its native runtime needs and this machine lacks (bootstrap installs them as root)."""
        return []

    @classmethod
    def pytest_clients(cls) -> list[PytestClient]:
        """The client fixtures the pytest plugin offers for this service (none by default)."""
        return []

    # -- namespaces -----------------------------------------------------
    def create_namespace(self, ns: Namespace) -> dict[str, str]:
        """Create what the namespace owns here; return the env vars this service contributes."""
        raise NotImplementedError

    def drop_namespace(self, ns: Namespace) -> None:
        """Remove everything the namespace owns here; idempotent."""
        raise NotImplementedError

    def namespace_env(self, ns: Namespace) -> dict[str, str]:
        """The env vars for an existing namespace (same as create_namespace returns)."""
        raise NotImplementedError

    @classmethod
    def load_fixtures(cls, folder: Path):
        """Parse and validate seeds/<name>/ completely, touching nothing; BadInput `file:line: problem`."""
        from localdev.errors import BadInput

        raise BadInput(f"{folder}: {cls.name} does not take fixtures")

    def namespace_sizes(self, namespaces: list[Namespace]) -> dict[str, int]:
        """Bytes each namespace takes here, by name, for the dashboard; a namespace left out is unknown
        (the default: a service that cannot tell cheaply says nothing rather than a guess)."""
        return {}

    def check_namespace(self, ns: Namespace) -> str | None:
        """None if the namespace's state here is intact; else a sentence saying what was lost and what to do.

        Called after every (re)start of a service that declares `loses_state_on_restart`."""
        return None

    def seed(self, ns: Namespace, fixtures) -> Undo:
        """Apply what load_fixtures returned. If that fails, undo this call's part and raise; else return
        an Undo, which `seeding.apply` commits once every service has applied its part, or rolls back."""
        raise NotImplementedError

    # -- exports (localdev/exports.py): the same seeds layout, written from a namespace's data -------------
    # A service package adds an `export` module beside its seeds: `dump(svc, ns, folder)` writes seeds/<name>/
    # into `folder` in the layout load_fixtures reads, streamed (memory must not grow with the data), and
    # returns the Summary (counts, content checksum); with folder None it only takes the Summary.
    # `version(svc)` names the server. What the layout cannot hold is refused (BadInput), never left out.
    def _export_module(self):
        import importlib

        from localdev.errors import BadInput

        try:
            return importlib.import_module(f"{type(self).__module__}.export")
        except ModuleNotFoundError:
            raise BadInput(f"{self.name} cannot export a namespace's data (it has no export module)") from None

    def export_namespace(self, ns: Namespace, folder: Path) -> Summary:
        """Write the namespace's data into `folder` as seeds; its counts and content checksum."""
        return self._export_module().dump(self, ns, folder)

    def checksum(self, ns: Namespace) -> Summary:
        """Counts and a checksum of the namespace's content here: equal data gives an equal checksum whatever
        order it was written in, and the namespace's name (key prefixes, bucket prefixes) does not enter it."""
        return self._export_module().dump(self, ns, None)

    def version(self) -> str:
        """The server's version, as an export's manifest records it."""
        return self._export_module().version(self)

    def adopt_env(self, ns: Namespace, env: dict[str, str]) -> str | None:
        """After a restore: make what this service puts in the namespace's env what `env` (the backup's) said,
        where something other than the secrets decides it (Redis: the database number in REDIS_URL). None when
        done (by default there is nothing to do); else a sentence saying what differs now."""
        return None

    def create_seeded(self, ns: Namespace, fixtures) -> dict[str, str]:
        """Create the namespace already seeded. Services with a faster way than create-then-replay override it."""
        env = self.create_namespace(ns)
        self.seed(ns, fixtures).commit()  # a failed create drops the whole namespace: nothing to roll back
        return env

    # -- snapshots (localdev/snapshots.py) ----------------------------------------------------------
    @property
    def needs(self) -> tuple[str, ...]:
        """The services this one, as configured, needs started before it, and whose part of a namespace it
        needs made before its own (and dropped after): by default its class's `depends_on`, which is what
        a flavor may need (compose files order containers by it)."""
        return self.depends_on

    def snapshot_copier(self):
        """This service's copy primitive (a `localdev.snapshots.Copier`, from its package's snapshot.py) for
        `ns snapshot`, `ns create --from`, `ns reset` and the seeded creates after the first; None where it has
        none here: those commands then refuse, and seeded creates replay."""
        return None
