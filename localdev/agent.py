"""The cluster agent: one long-lived process per cluster.

- serves the namespace API over HTTP on a 0600 Unix socket (uvicorn + starlette), with warm clients;
- supervises the services: one that dies is restarted with backoff, and the event is recorded for `status`;
- reaps expired namespaces on a timer.

Run by `localdev up` as ``python -m localdev.agent --home LOCALDEV_HOME``; in a container, as its main process,
``python -m localdev.agent --home DIR --up``: first what `up` does short of starting an agent (on runtime =
"external", the services' round trips and privileges: a missing one exits 2 saying which), then serve.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import logging
import math
import os
import queue
import secrets
import socket
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

from localdev.cluster import GATEWAY, Cluster
from localdev.dashboard import Dashboard
from localdev.errors import BadInput, Forbidden, LocalDevError, NotFound, SeedsMissing, kind_of
from localdev.ports import bind_tcp
from localdev.progress import listening
from localdev.seedpack import SeedStore, SharedSeeds
from localdev.services.base import ADVERTISED_HOST
from localdev.tls import tls_dir
from localdev.tokens import LOCAL, Principal
from localdev.waiting import poll_until

log = logging.getLogger("localdev.agent")


def _error(exc: Exception) -> JSONResponse:
    exc = _busy(exc) or exc
    if not isinstance(exc, LocalDevError):
        log.exception("unexpected error")
    status, kind = kind_of(exc)
    return JSONResponse({"error": str(exc) or exc.__class__.__name__, "kind": kind}, status_code=status)


def _busy(exc: Exception) -> LocalDevError | None:
    """An overload said as such: every registry connection stayed in use for the pool's whole wait (more
    commands at once than the agent serves), which psycopg_pool reports as "couldn't get a connection"."""
    from psycopg_pool import PoolTimeout

    if not isinstance(exc, PoolTimeout):
        return None
    log.warning("the registry's connections were all in use: %s", exc)
    return LocalDevError("the cluster is busy: every connection the agent keeps to its registry stayed in use "
                         f"while this command waited ({exc}); try again, or run fewer commands at once")


def build_app(cluster: Cluster, authenticate: Callable[[Request], Principal] | None = None,
              advertise_from_request: bool = False, dashboard: Dashboard | None = None,
              tls: bool = False, warmed: threading.Event | None = None) -> Starlette:
    """The namespace API. `authenticate` says who asks (None, the Unix socket: the local user, an admin; TCP: a
    token). `advertise_from_request`: env answers name the services by the host the client used for the
    agent, unless the config names an `advertise_host`. `dashboard`: the agent's one (its sessions); on TCP
    its pages are served here too, `tls` telling whether its cookie may only travel encrypted. `warmed`: set
    once the agent's start-up work is over (warm_services), which POST /warm waits for."""
    ns = cluster.namespaces
    dashboard = dashboard or Dashboard(cluster)
    store = SeedStore(cluster.state.home / "seeds", shared=SharedSeeds(ns.pool))
    everyone = ("admin", "ci", "reader")

    def handler(fn, roles=everyone, namespace_of=None, raw_body: bool = False):
        async def endpoint(request: Request):
            t0 = time.monotonic()
            who = None
            try:
                # (a token is checked in the registry: off the event loop; the local user needs no check)
                who = LOCAL if authenticate is None else await run_in_threadpool(authenticate, request)
                who.need(*roles)
                data = await request.body()
                body = data if raw_body else (json.loads(data) if data else {})
                if advertise_from_request and request.url.hostname:
                    ADVERTISED_HOST.set(request.url.hostname)
                if namespace_of and "application/x-ndjson" in request.headers.get("accept", ""):
                    return _streamed(fn, request, body, who, namespace_of(request, body))
                result = await run_in_threadpool(fn, request, body, who)
                response = JSONResponse(result)
            except Exception as exc:  # every failure becomes an answer the CLI can render
                response = _error(exc)
            log.info("%s %s by %s -> %s in %.0f ms", request.method, request.url.path, who.name if who else "?",
                     response.status_code, (time.monotonic() - t0) * 1e3)
            return response
        return endpoint

    def flag(request: Request, key: str) -> bool:
        return request.query_params.get(key, "0") in ("1", "true", "yes")

    def seeds_of(body: dict, who: Principal) -> tuple[Path | None, str | None]:
        """(folder, the name the user gave it): by hash from the store, or a path (only the local user's)."""
        if body.get("seeds_hash"):
            folder = store.path(body["seeds_hash"])
            if folder is None:
                raise SeedsMissing("the agent does not have these seeds: upload them first (PUT /seeds/HASH)")
            return folder, body.get("seeds_label") or "seeds"
        if body.get("seeds_dir"):
            if who is not LOCAL:
                raise Forbidden("over the network seeds are sent by content, not as a path on the agent's machine")
            return Path(body["seeds_dir"]), None
        return None, None

    def create(request, body, who):
        folder, label = seeds_of(body, who)
        with relabelled(folder, label):
            info = ns.create(body.get("name", ""), ttl=body.get("ttl") or "default", labels=body.get("labels"),
                             exist_ok=bool(body.get("exist_ok")), seed=bool(body.get("seed")) and folder is not None,
                             seeds_dir=folder, owner=None if who is LOCAL else who.name,
                             max_connections=body.get("max_connections"), from_=body.get("from"))
        if body.get("env"):  # `ns create --print-env`: the settings in the same answer, one round trip
            info["env"] = ns.env(info["name"], owner=who.owner, ca_file="here" if who is LOCAL else None)
            if body.get("masks"):
                info["masks"] = ns.secret_values(info["name"], owner=who.owner)
        return info

    def env(request, body, who):
        settings = ns.env(name(request), owner=who.owner, ca_file="here" if who is LOCAL else None)
        if not flag(request, "masks"):
            return settings
        # which values a CI log must hide (`--format github`); the values are in the settings already
        return {"env": settings, "masks": ns.secret_values(name(request), owner=who.owner)}

    def seed(request, body, who):
        folder, label = seeds_of(body, who)
        if folder is None:
            raise BadInput("no seeds given")
        with relabelled(folder, label):
            return ns.seed(request.path_params["name"], folder, body.get("services") or None, owner=who.owner)

    def status(request, body, who):
        data = cluster.status()
        if who.role == "admin" and cluster.has_registry:
            data["tokens"] = ns.tokens.list()
        return data

    def service_ready(request, body, who):
        """`up`'s readiness check of a service it started, made here with this process's warm clients (so the
        `up` command imports no service client library), then the service's after-start step."""
        if name(request) not in cluster.service_names:
            raise NotFound(f"this agent does not run a service {name(request)!r}")
        svc = cluster.services[name(request)]
        if not svc.ready():
            return {"ready": False}
        svc.after_ready()
        return {"ready": True}

    def warm(request, body, who):
        """`up`'s last step: until this agent's start-up work is over (its seed snapshot, the services'
        warm-ups), or `timeout` seconds; whether it is."""
        if warmed is None:
            return {"warm": True}
        try:
            timeout = float(body.get("timeout", 0))
        except (TypeError, ValueError):
            timeout = math.nan
        if not math.isfinite(timeout) or timeout < 0:  # (Event.wait raises on NaN: a 500, not a sentence)
            raise BadInput(f"timeout must be seconds, not {body.get('timeout')!r}")
        return {"warm": warmed.wait(min(timeout, 600.0))}

    def put_seeds(request, body, who):
        store.put(request.path_params["digest"], body)
        return {"stored": request.path_params["digest"]}

    def name(request) -> str:
        return request.path_params["name"]

    creators, admins = ("admin", "ci"), ("admin",)
    routes = [
        Route("/health", handler(lambda r, b, w: {"ok": True, "pid": os.getpid()}), methods=["GET"]),
        Route("/whoami", handler(lambda r, b, w: {"name": w.name, "role": w.role}), methods=["GET"]),
        Route("/status", handler(status), methods=["GET"]),
        Route("/services/{name}/ready", handler(service_ready, admins), methods=["POST"]),
        Route("/warm", handler(warm, admins), methods=["POST"]),
        Route("/namespaces", handler(create, creators, lambda r, b: b.get("name", "")), methods=["POST"]),
        Route("/namespaces", handler(lambda r, b, w: ns.list(owner=w.owner)), methods=["GET"]),
        Route("/namespaces/{name}", handler(lambda r, b, w: ns.get(name(r), owner=w.owner)), methods=["GET"]),
        Route("/namespaces/{name}", handler(lambda r, b, w: {"deleted": ns.delete(
            name(r), missing_ok=flag(r, "missing_ok"), owner=w.owner)}, creators), methods=["DELETE"]),
        Route("/namespaces/{name}/env", handler(env, creators), methods=["GET"]),
        Route("/namespaces/{name}/seed", handler(seed, creators, lambda r, b: name(r)), methods=["POST"]),
        # snapshots (localdev/snapshots.py)
        Route("/namespaces/{name}/snapshot", handler(lambda r, b, w: ns.snapshots.take(
            name(r), b.get("as", ""), owner=w.owner), creators), methods=["POST"]),
        Route("/namespaces/{name}/reset", handler(lambda r, b, w: ns.snapshots.reset(
            name(r), b.get("to"), owner=w.owner), creators), methods=["POST"]),
        Route("/snapshots", handler(lambda r, b, w: ns.snapshots.list(owner=w.owner)), methods=["GET"]),
        Route("/snapshots/{name}", handler(lambda r, b, w: {"deleted": ns.snapshots.delete(
            name(r), owner=w.owner)}, creators), methods=["DELETE"]),
        Route("/gc", handler(lambda r, b, w: {"names": ns.gc(dry_run=flag(r, "dry_run"))}, admins), methods=["POST"]),
        Route("/seeds/{digest}", handler(lambda r, b, w: {"present": store.path(r.path_params["digest"]) is not None},
                                         creators), methods=["GET"]),
        Route("/seeds/{digest}", handler(put_seeds, creators, raw_body=True), methods=["PUT"]),
        Route("/tokens", handler(lambda r, b, w: ns.tokens.create(b.get("name", ""), b.get("role", ""),
                                                                  b.get("ttl")), admins), methods=["POST"]),
        Route("/tokens", handler(lambda r, b, w: ns.tokens.list(), admins), methods=["GET"]),
        Route("/tokens/{name}", handler(lambda r, b, w: ns.tokens.revoke(name(r)), admins),
              methods=["DELETE"]),
        Route("/ca.pem", _ca_pem(cluster), methods=["GET"]),
        # a one-time URL of the dashboard: on the local listener it opens (socket), or on this TCP listener
        Route("/dashboard/sessions", handler(lambda r, b, w: {"url": dashboard.local_url(b.get("port")) if
                                                              authenticate is None else dashboard.remote_url(r, w)}),
              methods=["POST"]),
    ]
    if authenticate is not None:
        listener = cluster.listener()
        port = listener.port if listener else 0
        routes += dashboard.page_routes(cookie=f"localdev_dashboard_{port}", secure=tls)
    from localdev import exports_http

    routes += exports_http.routes(cluster, authenticate, _error)
    return Starlette(routes=routes)


def _ca_pem(cluster: Cluster):
    """The cluster CA's certificate, to anyone: it is public, and `localdev login` pins it by fingerprint."""
    async def endpoint(request: Request):
        path = tls_dir(cluster.state) / "ca.pem"
        if not path.exists():
            return JSONResponse({"error": "this agent has no cluster CA (TLS is off)", "kind": "not_found"}, 404)
        return PlainTextResponse(path.read_text(), media_type="application/x-pem-file")
    return endpoint


@contextmanager
def relabelled(folder: Path | None, label: str | None):
    """Errors about uploaded seeds name the files as the user wrote them, not the agent's copy."""
    try:
        yield
    except BadInput as exc:
        if folder is None or label is None:
            raise
        raise BadInput(str(exc).replace(str(folder), label.rstrip("/"))) from None


def _streamed(fn, request: Request, body, who: Principal, namespace: str) -> StreamingResponse:
    """Run a long operation, streaming its progress then its result (or error) as JSON lines.

    The work runs in its own thread to the end even if the client goes away: a killed CLI leaves a
    finished namespace, not half of one."""
    events: queue.Queue = queue.Queue()

    def work() -> None:
        t0 = time.monotonic()
        try:
            with listening(namespace, lambda service, msg, frac: events.put(
                    {"progress": msg, "service": service, "fraction": frac})):
                events.put({"result": fn(request, body, who)})
            status = 200
        except Exception as exc:  # sent to the client as an error line
            response = _error(exc)
            status = response.status_code
            events.put(json.loads(bytes(response.body)))
        log.info("%s %s (streamed) -> %s in %.0f ms", request.method, request.url.path, status,
                 (time.monotonic() - t0) * 1e3)
        events.put(None)

    # (in a copy of the request's context: the advertised host travels in a context variable)
    threading.Thread(target=contextvars.copy_context().run, args=(work,), name=f"op-{namespace}", daemon=True).start()

    async def lines():
        while (item := await run_in_threadpool(events.get)) is not None:
            yield json.dumps(item) + "\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


class Supervisor(threading.Thread):
    """Restarts services that died, with backoff; records each event for `status`."""

    def __init__(self, cluster: Cluster, interval: float):
        super().__init__(name="supervisor", daemon=True)
        self.cluster = cluster
        self.interval = interval
        self.backoff: dict[str, tuple[float, float]] = {}  # name -> (delay, next attempt)

    def run(self) -> None:
        while True:
            try:
                self.check_once()
            except Exception:  # the supervisor must outlive any single failure
                log.exception("supervisor round failed")
            time.sleep(self.interval)

    def check_once(self) -> None:
        recorded = self.cluster.recorded
        if not recorded or recorded.get("desired") != "up" or self.cluster.state.busy():
            return  # (busy: `up` is starting the services, or `down` stopping them)
        self.check_gateway()
        for name in recorded["services"]:
            if self.cluster.runtime.state(name).running:
                continue
            delay, next_at = self.backoff.get(name, (1.0, 0.0))
            if time.monotonic() < next_at:
                continue
            lock = self.cluster.state.lock(f"service-{name}")
            try:
                lock.acquire(timeout=0)
            except Exception:
                continue  # `up` or `down` is working on it
            try:
                recorded = self.cluster.recorded
                state = self.cluster.runtime.state(name)
                if state.running or not recorded or recorded.get("desired") != "up":
                    continue
                log.warning("%s is down (%s): restarting", name, state.detail)
                self.cluster.record_event(name, "died", state.detail)
                try:
                    self.cluster.start_service(name)
                    self.cluster.record_event(name, "restarted")
                    self.backoff.pop(name, None)
                    log.warning("%s restarted", name)
                    lost = sorted(self.cluster.verify_namespaces([name]))
                    if lost:
                        self.cluster.record_event(name, "state lost",
                                                  f"in {len(lost)} namespace(s): {', '.join(lost)}; "
                                                  f"`localdev seed NAME --service {name}` restores each")
                except Exception as exc:
                    self.cluster.record_event(name, "restart failed", str(exc))
                    log.warning("restarting %s failed: %s (next try in %.0fs)", name, exc, delay)
                    self.cluster.runtime.stop(name, self.cluster.stop_spec(name))
                    self.backoff[name] = (min(delay * 2, 30.0), time.monotonic() + delay)
            finally:
                lock.release()


    def check_gateway(self) -> None:
        """The AWS gateway is restarted like a service: at once, then with backoff if it keeps failing."""
        native = self.cluster._native()
        if native.state(GATEWAY).running or not self.cluster.gateway_services():
            return
        delay, next_at = self.backoff.get(GATEWAY, (1.0, 0.0))
        if time.monotonic() < next_at:
            return
        state = native.state(GATEWAY)
        if state.detail == "not started":
            return  # `up` starts it; `down` removed its pid file
        log.warning("the gateway is down (%s): restarting", state.detail)
        self.cluster.record_event(GATEWAY, "died", state.detail)
        try:
            self.cluster.start_gateway()
            self.cluster.record_event(GATEWAY, "restarted")
            self.backoff.pop(GATEWAY, None)
        except Exception as exc:
            self.cluster.record_event(GATEWAY, "restart failed", str(exc))
            log.warning("restarting the gateway failed: %s (next try in %.0fs)", exc, delay)
            self.backoff[GATEWAY] = (min(delay * 2, 30.0), time.monotonic() + delay)


class Reaper(threading.Thread):
    """Deletes expired namespaces (and interrupted creates) while the cluster runs. Agents that share a
    registry take turns by a lock in it: a round another agent is already doing is skipped, not repeated."""

    def __init__(self, cluster: Cluster, interval: float):
        super().__init__(name="reaper", daemon=True)
        self.cluster = cluster
        self.interval = interval

    def run(self) -> None:
        while True:
            time.sleep(self.interval)
            if self.cluster.state.busy():
                continue  # `up` or `down` is at work: the services may not answer yet
            try:
                removed = self.cluster.namespaces.gc(wait=False)
                if removed is None:
                    log.debug("another agent is reaping: this round is its")
                elif removed:
                    log.info("reaped expired namespaces: %s", ", ".join(removed))
            except Exception as exc:  # e.g. postgres restarting: try again next round
                log.warning("reaping failed: %s", exc)


def bind_socket(path) -> socket.socket:
    """The API socket, 0600 from the start (bound under a 077 umask, then chmod)."""
    if path.exists():
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(128)
    return sock


def warm_up(cluster: Cluster) -> None:
    """Pay the first request's costs (the runtime's client, the registry pool, each readiness check) before
    answering anyone: inside `up`, not in the command after it."""
    try:
        cluster.status()
        if cluster.has_registry:
            cluster.namespaces.list()
    except Exception as exc:  # a cold first request is all this saves; never fatal
        log.warning("warm-up failed: %s", exc)


SEED_SNAPSHOT_PREFIX = "seed-snapshot-"


def prepare_seed_snapshot(cluster: Cluster) -> None:
    """Make the seed snapshot of the project's seeds folder (the config's `[namespaces] seeds`) if it has
    none whole: a namespace of its own is seeded by replay, kept as that snapshot, and deleted. Then the first seeded
    create after `up` copies the snapshot, as later ones do, into servers whose code paths that replay has
    already been through, instead of replaying itself (one that comes while it is made waits for it, and this
    one waits for a create that came first: Snapshots.fill_seeded). The
    namespace is an ordinary one (`ns list` shows it while it lives, labelled localdev=seed-snapshot); one a
    `down` cut short is deleted by the next agent's warm-up (or expires in 5 minutes and is reaped)."""
    if not cluster.has_registry:
        return
    from localdev.snapshots import load_fixtures

    namespaces = cluster.namespaces
    seeds = cluster.config.seeds_dir
    try:
        for row in namespaces.list():
            if row["name"].startswith(SEED_SNAPSHOT_PREFIX) and row["labels"].get("localdev") == "seed-snapshot":
                namespaces.delete(row["name"], missing_ok=True)
        if not cluster.config.namespaces.get("seed_snapshots", True) or not seeds.is_dir():
            return
        fixtures = load_fixtures(seeds, list(cluster.service_names))
        snapshots = namespaces.snapshots
        if not fixtures.per_service or snapshots.being_built(fixtures.content_hash):  # (a user's create came first)
            return
        # One a restarted emulator lost part of is mended the same way: a seeded create replays that part
        # and takes it again (Snapshots._fill), here rather than in the user's first create.
        snap = snapshots.seed_snapshot(fixtures.content_hash)
        if snap is not None and not snapshots.lost_parts(snap):
            return
        name = SEED_SNAPSHOT_PREFIX + secrets.token_hex(4)
        try:
            namespaces.create(name, ttl=300, labels={"localdev": "seed-snapshot"}, seed=True, seeds_dir=seeds)
        finally:
            namespaces.delete(name, missing_ok=True)
        log.info("the seed snapshot of %s is made", seeds)
    except Exception as exc:  # the first create replays instead, and reports what is wrong with the seeds
        log.warning("making the seed snapshot of %s failed: %s", seeds, exc)


def after_up(cluster: Cluster) -> None:
    prepare_seed_snapshot(cluster)
    warm_up(cluster)


def warm_services(cluster: Cluster, then: Callable[[], None] | None = None,
                  done: Callable[[], None] = lambda: None) -> None:
    """In the background: each service's `warm()` as soon as it answers (`up` may have started this agent
    beside the services), `then()` as soon as every one answers, beside the warm-ups of the last; `done()`
    once all of it is over, which `up` waits for (POST /warm): the first create after `up` should cost what
    later ones do. (`then()` starting at once, its work on each service waiting for that service, made `up`
    slower: it took CPU from the last service's start, LocalStack's, which `up` waits for anyway.)"""
    from localdev.services import in_waves

    names = list(cluster.service_names)
    answered = threading.Barrier(len(names) + 1)

    def ready_then_warm(name: str) -> None:
        svc = cluster.services[name]
        try:
            poll_until(svc.ready, 300, f"{name} to answer", interval=0.1)
        except Exception as exc:  # only speed is lost
            log.info("%s did not answer: %s", name, exc)
            return
        finally:
            answered.wait()
        try:
            svc.warm()
        except Exception as exc:  # only speed is lost
            log.info("warming %s failed: %s", name, exc)

    def after_all() -> None:
        answered.wait()
        if then is not None:
            then()

    def run() -> None:
        after = threading.Thread(target=after_all, name="after-up", daemon=True)
        after.start()
        try:
            in_waves(names, ready_then_warm, depends=lambda n: ())
            after.join()
        finally:
            done()

    threading.Thread(target=run, name="warm-services", daemon=True).start()


def token_auth(cluster: Cluster) -> Callable[[Request], Principal]:
    """Who a TCP request is: the bearer token's name and role (401 without a valid one)."""
    tokens = cluster.namespaces.tokens

    def authenticate(request: Request) -> Principal:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return tokens.verify(token.strip() if scheme.lower() == "bearer" else None)
    return authenticate


async def serve_all(servers: list, on_started: Callable[[], None] | None = None) -> None:
    """Serve each (uvicorn.Server, socket) until any of them stops (a signal stops one), then stop all.
    `on_started()` runs once every server accepts requests."""
    tasks = [asyncio.create_task(server.serve(sockets=[sock])) for server, sock in servers]

    async def when_started() -> None:
        while not all(server.started for server, _ in servers):
            await asyncio.sleep(0.01)
        if on_started is not None:
            on_started()
    started = asyncio.create_task(when_started())
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    started.cancel()
    for server, _ in servers:
        server.should_exit = True
    await asyncio.gather(*tasks)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="localdev-agent")
    parser.add_argument("--home", required=True)
    parser.add_argument("--up", action="store_true", help="run `up` (without starting an agent) first, then serve "
                                                           "in the foreground (a container's main process)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cluster = Cluster(home=args.home)
    if args.up:
        try:
            cluster.up(agent=False, progress=log.info)
        except LocalDevError as exc:
            log.error("%s", exc)
            raise SystemExit(exc.exit_code) from None
        cluster.close()
        cluster = Cluster(home=args.home)  # as a started agent sees it: the config `up` recorded
    agent_cfg = cluster.config.agent
    # Started by `up` beside the services, the agent must answer its ping at once; its warm-up then follows
    # the services' start, in the background.
    starting = cluster.state.busy()
    if not starting:
        warm_up(cluster)

    def server(app, certfile=None, keyfile=None):
        return uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                             ssl_certfile=certfile, ssl_keyfile=keyfile))

    dashboard = Dashboard(cluster)
    warmed = threading.Event()
    servers = [(server(build_app(cluster, dashboard=dashboard, warmed=warmed)),
                bind_socket(cluster.state.agent_socket))]
    listener = cluster.listener()
    if listener is not None:
        cert = listener.cert
        app = build_app(cluster, token_auth(cluster), advertise_from_request=not cluster.config.advertise_host,
                        dashboard=dashboard, tls=cert is not None, warmed=warmed)
        servers.append((server(app, str(cert.cert) if cert else None, str(cert.key) if cert else None),
                        bind_tcp(listener.host, listener.port)))
        log.info("agent serving %s", listener.url)
    Supervisor(cluster, float(agent_cfg["supervise_interval"])).start()
    Reaper(cluster, float(agent_cfg["reap_interval"])).start()
    log.info("agent serving %s (pid %d)", cluster.state.agent_socket, os.getpid())
    try:
        # warmed once serving: its imports would otherwise hold the GIL while the first ping waits
        asyncio.run(serve_all(servers, on_started=lambda: warm_services(
            cluster, then=partial(after_up, cluster) if starting else None, done=warmed.set)))
    finally:
        cluster.namespaces.close()
        cluster.close()


if __name__ == "__main__":
    main()
