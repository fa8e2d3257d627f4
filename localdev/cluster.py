"""The shared cluster: up / down / status, over whichever runtime it runs on. Owns the state directory.

Example::

    from localdev.cluster import Cluster
    cluster = Cluster()                 # LOCALDEV_HOME, localdev.toml
    cluster.up()                        # every enabled service, then the agent
    ns = cluster.namespaces.create("pr-1", ttl="2h")
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from localdev import config as config_mod
from localdev.errors import AgentUnavailable, BadInput, LocalDevError, NotFound
from localdev.runtimes.base import ProcessSpec
from localdev.services import in_waves, service_classes, with_dependencies
from localdev.services.base import Service, ServiceContext
from localdev.state import StateDir
from localdev.tls import ServerCert
from localdev.waiting import TimedOut, poll_until

log = logging.getLogger("localdev.cluster")

if TYPE_CHECKING:
    from localdev.namespaces import Namespaces
    from localdev.runtimes.base import Runtime

AGENT = "agent"
GATEWAY = "gateway"  # localdev's AWS gateway (localdev/gateway/): a process of ours on every runtime
WARM_WAIT = 30.0  # seconds `up` waits for the agent's start-up work (Cluster._await_warm_agent)
WILDCARDS = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class Listener:
    """The agent's TCP listener (team mode)."""

    host: str
    port: int
    url: str
    cert: ServerCert | None  # None: plain HTTP (`insecure = true`)


def _quiet(_msg: str) -> None:
    pass


class Cluster:
    def __init__(self, home: Path | str | None = None, config: config_mod.Config | None = None,
                 labels: dict[str, str] | None = None):
        """`labels`: put on everything the container runtime creates, besides its own (an ephemeral cluster's
        session id); recorded by `up`, so the agent's restarts carry them too."""
        self.state = StateDir(Path(home) if home else None)
        self._config = config
        self._labels = labels
        self._services: dict[str, Service] | None = None
        self._runtime: Runtime | None = None
        self._namespaces: Namespaces | None = None

    # -- configuration ----------------------------------------------------
    @property
    def config(self) -> config_mod.Config:
        """The config `up` recorded (so every later command agrees), else the project's."""
        if self._config is None:
            recorded = self.state.read_cluster()
            self._config = (config_mod.Config.from_json(recorded["config"]) if recorded
                            else config_mod.load())
        return self._config

    @property
    def recorded(self) -> dict | None:
        return self.state.read_cluster()

    @property
    def labels(self) -> dict[str, str]:
        if self._labels is None:
            self._labels = dict((self.recorded or {}).get("labels") or {})
        return self._labels

    @property
    def service_names(self) -> list[str]:
        recorded = self.recorded
        return recorded["services"] if recorded else self.config.enabled_services()

    @property
    def has_registry(self) -> bool:
        """The namespace registry (and the tokens, and the gateway's ownership) lives in PostgreSQL: a cluster
        without it has none."""
        return "postgres" in self.service_names

    @property
    def services(self) -> dict[str, Service]:
        if self._services is None:
            classes = service_classes()
            cfg = self.config
            runtime = self.runtime
            self._services = {}
            for name, cls in classes.items():
                ctx = ServiceContext(state=self.state, host=cfg.host, runtime=runtime.name,
                                     options=cfg.services[name], services=self._services,
                                     namespaces=cfg.namespaces, advertise_host=cfg.advertise_host,
                                     server_cert=self.server_cert, registry=lambda: self.namespaces.pool(),
                                     endpoint=runtime.endpoint(name, cfg.services[name]),
                                     instance=functools.partial(runtime.instance, name))
                self._services[name] = cls(ctx)
        return self._services

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            recorded = self.recorded
            name = recorded["runtime"] if recorded else self._choose_runtime(self.config.runtime)
            self._runtime = self._make_runtime(name)
        return self._runtime

    def _choose_runtime(self, wanted: str) -> str:
        if wanted == "auto":
            from localdev.runtimes import docker_available

            return "docker" if docker_available() else "native"
        return wanted

    def _make_runtime(self, name: str):
        if name == "native":
            from localdev.runtimes.native import NativeRuntime

            return NativeRuntime(self.state, self.config.host)
        if name == "docker":
            from localdev.runtimes.docker import DockerRuntime

            return DockerRuntime(self.state, self.config.host, labels=self.labels)
        if name == "external":
            from localdev.runtimes.external import ExternalRuntime

            return ExternalRuntime(self.state, self.config.host)
        raise BadInput(f"unknown runtime {name!r}; use auto, native, docker or external")

    def spec(self, name: str):
        return self.runtime.spec_for(self.services[name])

    def listener(self) -> Listener | None:
        """The agent's TCP listener, if the config asks for one; makes the cluster CA and the server
        certificate (for every name a client may use) unless `insecure` or the config names its own."""
        import socket

        from localdev.config import parse_listen
        from localdev.tls import ensure_server_cert

        agent = self.config.agent
        if not agent["listen"]:
            return None
        host, port = parse_listen(agent["listen"], "agent.listen")
        public = self.config.advertise_host or (host if host not in WILDCARDS else socket.getfqdn())
        if agent["insecure"]:
            cert = None
        elif agent["cert"]:
            root = self.config.root
            cert = ServerCert(cert=root / agent["cert"], key=root / agent["key"], ca=None)
        else:
            cert = ensure_server_cert(self.state, self._cert_names(host))
        scheme = "https" if cert else "http"
        where = f"[{public}]" if ":" in public else public
        return Listener(host=host, port=port, url=f"{scheme}://{where}:{port}", cert=cert)

    # -- up / down ----------------------------------------------------------
    def up(self, services: list[str] | None = None, runtime: str | None = None,
           progress: Callable[[str], None] = _quiet, agent: bool = True, serve: str | None = None) -> dict:
        """`serve`: also listen on TCP at this address (team mode), as `[agent] listen` does."""
        if agent:
            self._check_socket_path()
        self.state.ensure()
        with self.state.lock():
            recorded = self.recorded
            given = self._config is not None  # (checking what runs loads the recorded config)
            running = recorded is not None and recorded.get("desired") == "up" and self._any_running(recorded)
            if not given and not running:
                # A stopped cluster takes the project's current config; a running one keeps what it runs with.
                self._config = config_mod.load()
            if serve is not None:
                from localdev.config import parse_listen

                parse_listen(serve)
                self.config.agent = {**self.config.agent, "listen": serve}
            was_listening = ((recorded or {}).get("config") or {}).get("agent", {}).get("listen", "")
            wanted_runtime = self._choose_runtime(runtime or self.config.runtime)
            if running and recorded is not None and recorded["runtime"] != wanted_runtime:
                raise BadInput(f"the cluster in {self.state.home} runs on the {recorded['runtime']} runtime; "
                               f"`localdev down` first to switch to {wanted_runtime}")
            self._runtime = self._make_runtime(wanted_runtime)
            self._close_services()  # made again from this config; a dropped one's pool would stay open until GC
            classes = service_classes()
            if services:
                unknown = [s for s in services if s not in classes]
                if unknown:
                    raise BadInput(f"unknown service {unknown[0]!r}; known: {', '.join(classes)}")
                names = with_dependencies(list(services))
            else:
                names = with_dependencies(self.config.enabled_services())
            if recorded and recorded.get("desired") == "up" and not services:
                names = with_dependencies(sorted(set(names) | set(recorded["services"]), key=list(classes).index))
            for name in names:  # bad input changes nothing: refuse before starting anything
                self.services[name].check()
                self.services[name].check_exposure()
                self.runtime.verify(self.services[name])
            self._check_ports(names)
            self._choose_backend_ports(names)
            listener = self.listener() if agent else None  # before anything starts: a bad cert path is bad input
            if listener is not None and not self._native().state(AGENT).running:
                from localdev.ports import port_in_use

                if port_in_use(listener.host if listener.host not in WILDCARDS else "127.0.0.1", listener.port):
                    raise BadInput(f"port {listener.port} on {listener.host} is already in use by another program, so "
                                   "the agent cannot listen there: stop that program or choose another address "
                                   "([agent] listen, or `up --serve ADDR`); nothing was started")
            self.state.write_cluster({"runtime": wanted_runtime, "services": names, "desired": "up",
                                      "config": self.config.to_json(), "home": str(self.state.home),
                                      "labels": self.labels})
            # The gateway's and the agent's start-up beside the services': the gateway holds requests until its
            # back ends answer; the agent leaves the services alone while this lock is held (State.busy).
            self.start_gateway(progress, wait=False)
            fresh_agent = False
            if agent:
                if was_listening != self.config.agent["listen"]:  # the agent reads its listener at start
                    self._native().stop(AGENT, self.agent_spec())
                fresh_agent = not self._native().state(AGENT).running
                self.start_agent(progress, wait=False)
            registry = threading.Thread(target=self._warm_registry, name="registry", daemon=True)

            def start(name: str) -> bool:
                # An agent started just now holds the config recorded above: it checks the services it warms
                # anyway, so this command need not load their client libraries to check them too.
                started = self._start(name, progress, via_agent=fresh_agent)
                if name == "postgres":  # the registry's server
                    # its client and pool, made while the slower services start: verify_namespaces below then
                    # costs its queries only (a cold `up` paid ~0.3 s for them after the last service)
                    registry.start()
                return started

            results = in_waves(names, start, depends=lambda n: self.services[n].needs)
            started = [n for n in names if results[n]]
            self.start_gateway(progress)
            if agent:
                self.start_agent(progress)
            if registry.ident is not None:  # started
                registry.join()
            self.verify_namespaces(started, progress)
            if fresh_agent:
                self._await_warm_agent(progress)
        # Every service answered a real request just now (`_start` waits for one, or found it answering): the
        # status need not ask them again, nor import their client libraries to do so.
        return self.status(known_ready=set(names))

    def _await_warm_agent(self, progress) -> None:
        """Until the agent this `up` started has done its start-up work (the seed snapshot of the project's
        seeds, each service's first requests): the first `ns create` after `up` then costs what later ones do,
        instead of paying that work, however soon it comes. Never fails `up`: an agent that takes longer, or
        is older than this code, does the rest in the background."""
        from localdev.agent_client import AgentClient

        t0 = time.monotonic()
        try:
            warm = AgentClient(self.state.home, timeout=WARM_WAIT + 5).request("POST", "/warm",
                                                                                {"timeout": WARM_WAIT})["warm"]
        except (LocalDevError, KeyError) as exc:
            log.debug("waiting for the agent's warm-up: %s", exc)
            return
        progress(f"warm-up: {'done' if warm else 'goes on in the background'} in {time.monotonic() - t0:.1f}s")

    def _warm_registry(self) -> None:
        try:
            self.namespaces.pool()
        except Exception as exc:  # only speed is lost: verify_namespaces says what is wrong
            log.debug("warming the registry failed: %s", exc)

    def _check_ports(self, names: list[str]) -> None:
        """Every port a service (or the gateway) that is not running will take must be free, before any starts."""
        from localdev.ports import port_in_use, port_taken

        for name in names:
            svc = self.services[name]
            if not self.runtime.state(name).running and port_in_use(svc.bind_host, svc.backend_port):
                raise port_taken(name, svc.bind_host, svc.backend_port, started_nothing=True)
        if not self._native().state(GATEWAY).running:
            for name in self.gateway_services(names):
                svc = self.services[name]
                if port_in_use(self.config.host, svc.port):
                    raise port_taken(name, self.config.host, svc.port, started_nothing=True)

    def _choose_backend_ports(self, names: list[str]) -> None:
        """A private loopback port for each service behind the gateway, unless the config names one; recorded
        with the config, so every later command (and the gateway) agrees until the next `down`."""
        from localdev.ports import free_port, port_in_use

        # The previous run's choice is kept while it is free, so a process that still holds this cluster's
        # config from before a `down` (a test, a notebook) reaches the back end after the next `up`.
        before = ((self.recorded or {}).get("config") or {}).get("services", {})
        taken = {int(o["port"]) for o in self.config.services.values()}
        for name in self.gateway_services(names):
            options = self.config.services[name]
            if not options.get("backend_port"):
                port = int(before.get(name, {}).get("backend_port") or 0)
                busy = port and not self.runtime.state(name).running and port_in_use("127.0.0.1", port)
                if not port or port in taken or busy:
                    port = free_port()
                    while port in taken:
                        port = free_port()
                options["backend_port"] = port
            taken.add(int(options["backend_port"]))

    # -- the AWS gateway ------------------------------------------------------------
    def gateway_services(self, names: list[str] | None = None) -> list[str]:
        """The services the gateway fronts, of `names` (default: the cluster's): those localdev runs; an external
        service's url is used as given."""
        names = self.service_names if names is None else names
        return [n for n in names if self.services[n].behind_gateway and self.services[n].ctx.endpoint is None]

    def gateway_spec(self) -> ProcessSpec:
        return ProcessSpec(argv=[sys.executable, "-m", "localdev.gateway", "--home", str(self.state.home)],
                           env={"PYTHONUNBUFFERED": "1"}, stop_timeout=5)

    def gateway_ready(self) -> bool:
        """Every port it owns accepts a connection."""
        import socket

        for name in self.gateway_services():
            try:
                socket.create_connection((self.services[name].host, self.services[name].port), timeout=1).close()
            except OSError:
                return False
        return True

    def start_gateway(self, progress: Callable[[str], None] = _quiet, wait: bool = True) -> None:
        """Start the gateway unless it runs (or nothing is behind it), and wait until its ports answer (unless
        not `wait`: `up` starts it beside the services, and waits for it after them)."""
        if not self.gateway_services():
            return
        with self.state.lock(f"service-{GATEWAY}"):
            self._start_own(GATEWAY, self.gateway_spec(), self.gateway_ready, "the AWS gateway", progress, wait)

    def _start_own(self, name: str, spec: ProcessSpec, answers: Callable[[], bool], what: str,
                   progress: Callable[[str], None], wait: bool = True) -> None:
        """Start a process of ours (the agent, the gateway) unless it runs; wait until it answers."""
        native = self._native()  # a process of ours on every runtime
        if native.state(name).running:
            if answers():
                return
        else:
            progress(f"{name}: starting")
            native.start(name, spec)
        if not wait:
            return
        try:
            poll_until(answers, 30, what, interval=0.05,
                       fail=lambda: None if native.state(name).running else
                       f"{what} exited during start-up: see `localdev logs {name}`")
        except TimedOut:
            raise LocalDevError(f"{what} did not answer within 30s: see `localdev logs {name}`") from None
        progress(f"{name}: ready")

    def verify_namespaces(self, started: list[str], progress: Callable[[str], None] = _quiet) -> dict:
        """After services (re)started, record which namespaces lost state in them (in-memory emulators)."""
        checked = [n for n in started if self.services[n].loses_state_on_restart]
        if not checked or not self.runtime.state("postgres").running:
            return {}
        lost = self.namespaces.verify(checked)
        for problems in lost.values():
            for problem in problems.values():
                progress(problem)
        return lost

    def _any_running(self, recorded: dict) -> bool:
        runtime = self._make_runtime(recorded["runtime"])
        return any(runtime.state(n).running for n in [*recorded["services"], AGENT])

    def _start(self, name: str, progress, via_agent: bool = False) -> bool:
        """Start `name` unless it runs and answers; True if it was started. `via_agent`: see start_service."""
        svc = self.services[name]
        with self.state.lock(f"service-{name}"):
            if self.runtime.state(name).running and svc.ready():
                progress(f"{name}: already running")
                return False
            progress(f"{name}: preparing")
            self.runtime.prepare(svc)
            progress(f"{name}: starting")
            t0 = time.monotonic()
            self.start_service(name, via_agent)
            progress(f"{name}: ready in {time.monotonic() - t0:.1f}s")
            return True

    def start_service(self, name: str, via_agent: bool = False) -> None:
        """Start (or restart) one service and wait until a real request succeeds. Caller holds its lock.
        `via_agent`: the agent (started by this `up`, with its config) makes the request and the after-start
        step, unless it cannot (gone, or older than this code): then this process does."""
        svc = self.services[name]
        spec = self.spec(name)
        self._drop_clients(name)
        self.runtime.start(name, spec)

        def alive() -> bool:
            return self.runtime.state(name).running

        if via_agent and self._ready_through_agent(svc, alive):
            return
        svc.wait_ready(alive=alive)
        svc.after_ready()

    def _ready_through_agent(self, svc, alive: Callable[[], bool]) -> bool:
        """Wait until the agent says `svc` answers (and ran its after-start step); False, at once, if the agent
        is not running or has no such check. A failure it reports (after_ready's) is raised here."""
        from localdev.agent_client import AgentClient

        client = AgentClient(self.state.home, timeout=60)
        usable = True

        def answered() -> bool:
            nonlocal usable
            try:
                return bool(client.request("POST", f"/services/{svc.name}/ready")["ready"])
            except AgentUnavailable:  # not serving yet, or gone
                if self._native().state(AGENT).running:
                    return False
            except NotFound:
                pass
            usable = False
            return True  # stop waiting here: this process checks instead

        svc.wait_ready(alive=alive, check=answered)
        return usable

    def _drop_clients(self, name: str) -> None:
        """Warm clients of a service that is (re)starting, and of everything built on it, are dropped:
        a connection pool that lived through a server's death can stay wedged long after it is back."""
        for other, svc in (self._services or {}).items():
            if other == name or name in svc.depends_on:
                svc.close()
        if name == "postgres" and self._namespaces is not None:  # the registry lives in PostgreSQL
            self._namespaces.close()

    def start_agent(self, progress: Callable[[str], None] = _quiet, wait: bool = True) -> None:
        from localdev.agent_client import AgentClient

        client = AgentClient(self.state.home)
        self._start_own(AGENT, self.agent_spec(), client.ping, "the cluster agent", progress, wait)

    def _native(self):
        """Where the agent runs, whatever runs the services: a process of ours (the runtime keeps no state
        beyond the pid files in LOCALDEV_HOME, so a second instance sees what the first one started)."""
        from localdev.runtimes.native import NativeRuntime

        return NativeRuntime(self.state, self.config.host)

    def stop_spec(self, name: str):
        """The spec only tells how to stop (signal, timeout): stopping must work even if e.g. Java is gone."""
        try:
            return self.spec(name)
        except LocalDevError:
            return None

    def agent_spec(self) -> ProcessSpec:
        return ProcessSpec(argv=[sys.executable, "-m", "localdev.agent", "--home", str(self.state.home)],
                           env={"PYTHONUNBUFFERED": "1"}, stop_timeout=10)

    def down(self, purge: bool = False, progress: Callable[[str], None] = _quiet) -> None:
        self.state.ensure()
        with self.state.lock():
            recorded = self.recorded
            if recorded:
                # Tell the agent's supervisor first, so it does not restart what we stop.
                recorded["desired"] = "down"
                self.state.write_cluster(recorded)
                def stop(name: str) -> None:
                    with self.state.lock(f"service-{name}"):
                        progress(f"{name}: stopping")
                        self.runtime.stop(name, self.stop_spec(name))

                # Clients are refused at once rather than held while their back end goes away.
                with self.state.lock(f"service-{GATEWAY}"):
                    self._native().stop(GATEWAY, self.gateway_spec())
                # Dependants first; every service is stopped even if one fails, then the failures are raised.
                in_waves(recorded["services"], stop, dependants_first=True, keep_going=True)
                progress("agent: stopping")
                self._native().stop(AGENT, self.agent_spec())
            self.close()  # its servers are stopped: a pool would only retry (purge makes the services again)
            if purge:
                for name in service_classes():
                    progress(f"{name}: removing data")
                    self.services[name].purge()
                self.runtime.purge(recorded["services"] if recorded else [])
                self.state.cluster_file.unlink(missing_ok=True)
                (self.state.home / "secrets.json").unlink(missing_ok=True)

    # -- status ---------------------------------------------------------------
    def status(self, known_ready: frozenset[str] | set[str] = frozenset()) -> dict:
        """Each service's state (a real request to each running one, unless `known_ready` says it answered
        one just now), the agent's and the gateway's, recent events and problems."""
        recorded = self.recorded
        if not recorded:
            return {"home": str(self.state.home), "state": "not initialised", "runtime": None,
                    "services": {}, "agent": {"running": False}, "events": []}
        names = recorded["services"]
        results: dict[str, dict] = {}

        def check(name: str) -> None:
            st = self.runtime.state(name)
            svc = self.services[name]
            healthy = st.running and (name in known_ready or svc.ready())
            results[name] = {"state": "healthy" if healthy else ("unhealthy" if st.running else "stopped" if
                             recorded.get("desired") == "down" or st.detail == "not started" else "dead"),
                             "pid": st.pid if st.running else None, "port": svc.port, "host": svc.host,
                             "detail": st.detail}

        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            list(pool.map(check, names))
        agent_state = self._native().state(AGENT)
        return {"home": str(self.state.home), "state": recorded.get("desired", "up"),
                "runtime": recorded["runtime"],
                "services": {n: results[n] for n in names},
                "agent": {"running": agent_state.running, "pid": agent_state.pid if agent_state.running else None,
                          "detail": agent_state.detail, "socket": str(self.state.agent_socket),
                          "listener": self._listener_status()},
                "gateway": self._gateway_status(recorded),
                "events": self.events(limit=10), "problems": self._problems(results)}

    def _check_socket_path(self) -> None:
        # The kernel's limit for a Unix socket's path (sun_path, 108 bytes with its NUL): past it the agent
        # cannot bind and dies at start with nothing better to say.
        sock = str(self.state.agent_socket)
        if len(os.fsencode(sock)) > 107:
            raise BadInput(f"LOCALDEV_HOME {self.state.home} is too long for the agent's socket ({sock} is "
                           f"{len(os.fsencode(sock))} bytes; Unix sockets allow 107): choose a shorter LOCALDEV_HOME")

    def _gateway_status(self, recorded: dict) -> dict | None:
        """The gateway's process, the ports it owns, and its per-namespace request counts (no credentials)."""
        from localdev.gateway.stats import FILE, read

        fronted = self.gateway_services()
        if not fronted:
            return None
        st = self._native().state(GATEWAY)
        healthy = st.running and self.gateway_ready()
        stats = read(self.state.run(GATEWAY) / FILE) if st.running else None
        return {"state": "healthy" if healthy else ("unhealthy" if st.running else "stopped" if
                recorded.get("desired") == "down" or st.detail == "not started" else "dead"),
                "pid": st.pid if st.running else None, "detail": st.detail,
                "ports": {n: self.services[n].port for n in fronted},
                "backends": {n: self.services[n].backend_port for n in fronted},
                "namespaces": (stats or {}).get("namespaces", {})}

    def server_cert(self) -> ServerCert:
        """The cluster CA's server certificate, for every name clients may use (the agent's and the services')."""
        from localdev.config import parse_listen
        from localdev.tls import ensure_server_cert

        listen = self.config.agent["listen"]
        return ensure_server_cert(self.state, self._cert_names(parse_listen(listen)[0] if listen else ""))

    def _cert_names(self, listen_host: str) -> list[str]:
        return sorted(_own_names() | {h for h in (self.config.advertise_host, listen_host, self.config.host)
                                      if h not in WILDCARDS})

    def _listener_status(self) -> dict | None:
        listener = self.listener()
        if listener is None:
            return None
        cert = listener.cert
        return {"url": listener.url, "tls": cert is not None, "ca": str(cert.ca) if cert and cert.ca else None,
                "cert": str(cert.cert) if cert else None,
                "warning": None if cert else
                "plain HTTP (insecure = true): tokens and data cross the network unencrypted"}

    def _problems(self, results: dict) -> dict:
        """Namespaces that lost state in a restarted service (recorded in the registry)."""
        if results.get("postgres", {}).get("state") != "healthy":
            return {}
        try:
            return self.namespaces.problems()
        except Exception:  # the registry may not exist yet on a fresh cluster
            return {}

    # -- supervisor events (written by the agent, shown by status) -------------
    @property
    def events_file(self) -> Path:
        return self.state.home / "run" / "events.jsonl"

    def record_event(self, service: str, event: str, detail: str = "") -> None:
        line = json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "service": service,
                           "event": event, "detail": detail})
        with open(self.events_file, "a") as fh:
            fh.write(line + "\n")

    def events(self, limit: int = 10) -> list[dict]:
        try:
            lines = self.events_file.read_text().splitlines()[-limit:]
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    # -- logs ---------------------------------------------------------------------
    def logs(self, name: str, tail: int | None = None, follow: bool = False):
        if name in (AGENT, GATEWAY):
            return self._native().logs(name, tail, follow)
        if name not in service_classes():
            raise BadInput(f"unknown service {name!r}; known: {', '.join(service_classes())}, agent, gateway")
        return self.runtime.logs(name, tail, follow)

    # -- namespaces -----------------------------------------------------------------
    @property
    def namespaces(self) -> Namespaces:
        if self._namespaces is None:
            from localdev.namespaces import Namespaces

            self._namespaces = Namespaces(self)
        return self._namespaces

    def close(self) -> None:
        """Give back this process's connections to the cluster (the registry's pool, each service's): the
        cluster keeps running. The object stays usable: what it needs next is made again."""
        if self._namespaces is not None:
            self._namespaces.close()
        self._close_services()

    def _close_services(self) -> None:
        services, self._services = self._services, None
        for svc in (services or {}).values():
            svc.close()


@functools.cache
def _own_names() -> frozenset[str]:
    """This machine's names, looked up once per process: getfqdn asks the resolver, which can take seconds
    where DNS is slow or absent, and `status` needs the names on every call."""
    import socket

    return frozenset({"localhost", "127.0.0.1", "::1", socket.gethostname(), socket.getfqdn()})
