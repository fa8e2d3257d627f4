"""The cluster agent: one long-lived process per cluster.

- serves the namespace API over HTTP on a 0600 Unix socket (uvicorn + starlette), with warm clients;
- supervises the services: one that dies is restarted with backoff, and the event is recorded for `status`;
- reaps expired namespaces on a timer.

Run by `localdev up` as ``python -m localdev.agent --home LOCALDEV_HOME``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import socket
import threading
import time

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from localdev.cluster import Cluster
from localdev.errors import LocalDevError, kind_of
from localdev.progress import listening

log = logging.getLogger("localdev.agent")


def _error(exc: Exception) -> JSONResponse:
    if not isinstance(exc, LocalDevError):
        log.exception("unexpected error")
    status, kind = kind_of(exc)
    return JSONResponse({"error": str(exc) or exc.__class__.__name__, "kind": kind}, status_code=status)


def build_app(cluster: Cluster) -> Starlette:
    ns = cluster.namespaces

    def handler(fn, namespace_of=None):
        async def endpoint(request: Request):
            body = await request.json() if request.method in ("POST", "PUT") and await request.body() else {}
            if namespace_of and "application/x-ndjson" in request.headers.get("accept", ""):
                return _streamed(fn, request, body, namespace_of(request, body))
            t0 = time.monotonic()

            try:
                result = await run_in_threadpool(fn, request, body or {})
                status = 200
                response = JSONResponse(result)
            except Exception as exc:  # every failure becomes an answer the CLI can render
                response = _error(exc)
                status = response.status_code
            log.info("%s %s -> %s in %.0f ms", request.method, request.url.path, status, (time.monotonic() - t0) * 1e3)
            return response
        return endpoint

    def flag(request: Request, key: str) -> bool:
        return request.query_params.get(key, "0") in ("1", "true", "yes")

    def create(request, body):
        return ns.create(body.get("name", ""), ttl=body.get("ttl") or "default", labels=body.get("labels"),
                         exist_ok=bool(body.get("exist_ok")), seed=bool(body.get("seed")),
                         seeds_dir=body.get("seeds_dir"))

    routes = [
        Route("/health", handler(lambda r, b: {"ok": True, "pid": os.getpid()}), methods=["GET"]),
        Route("/status", handler(lambda r, b: cluster.status()), methods=["GET"]),
        Route("/namespaces", handler(create, lambda r, b: b.get("name", "")), methods=["POST"]),
        Route("/namespaces", handler(lambda r, b: ns.list()), methods=["GET"]),
        Route("/namespaces/{name}", handler(lambda r, b: ns.get(r.path_params["name"])), methods=["GET"]),
        Route("/namespaces/{name}", handler(lambda r, b: {"deleted": ns.delete(
            r.path_params["name"], missing_ok=flag(r, "missing_ok"))}), methods=["DELETE"]),
        Route("/namespaces/{name}/env", handler(lambda r, b: ns.env(r.path_params["name"])), methods=["GET"]),
        Route("/namespaces/{name}/seed", handler(lambda r, b: ns.seed(r.path_params["name"], b.get("seeds_dir"),
                                                                   b.get("services") or None),
                                                 lambda r, b: r.path_params["name"]), methods=["POST"]),
        Route("/gc", handler(lambda r, b: {"names": ns.gc(dry_run=flag(r, "dry_run"))}), methods=["POST"]),
    ]
    return Starlette(routes=routes)


def _streamed(fn, request: Request, body: dict, namespace: str) -> StreamingResponse:
    """Run a long operation, streaming its progress then its result (or error) as JSON lines.

    The work runs in its own thread to the end even if the client goes away: a killed CLI leaves a
    finished namespace, not half of one."""
    events: queue.Queue = queue.Queue()

    def work() -> None:
        t0 = time.monotonic()
        try:
            with listening(namespace, lambda service, msg, frac: events.put(
                    {"progress": msg, "service": service, "fraction": frac})):
                events.put({"result": fn(request, body)})
            status = 200
        except Exception as exc:  # sent to the client as an error line
            response = _error(exc)
            status = response.status_code
            events.put(json.loads(bytes(response.body)))
        log.info("%s %s (streamed) -> %s in %.0f ms", request.method, request.url.path, status,
                 (time.monotonic() - t0) * 1e3)
        events.put(None)

    threading.Thread(target=work, name=f"op-{namespace}", daemon=True).start()

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
        if not recorded or recorded.get("desired") != "up":
            return
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


class Reaper(threading.Thread):
    """Deletes expired namespaces (and interrupted creates) while the cluster runs."""

    def __init__(self, cluster: Cluster, interval: float):
        super().__init__(name="reaper", daemon=True)
        self.cluster = cluster
        self.interval = interval

    def run(self) -> None:
        while True:
            time.sleep(self.interval)
            try:
                removed = self.cluster.namespaces.gc()
                if removed:
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
        cluster.namespaces.list()
    except Exception as exc:  # a cold first request is all this saves; never fatal
        log.warning("warm-up failed: %s", exc)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="localdev-agent")
    parser.add_argument("--home", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cluster = Cluster(home=args.home)
    agent_cfg = cluster.config.agent
    warm_up(cluster)
    sock = bind_socket(cluster.state.agent_socket)
    Supervisor(cluster, float(agent_cfg["supervise_interval"])).start()
    Reaper(cluster, float(agent_cfg["reap_interval"])).start()
    log.info("agent serving %s (pid %d)", cluster.state.agent_socket, os.getpid())
    config = uvicorn.Config(build_app(cluster), fd=sock.fileno(), log_level="warning", access_log=False,
                            lifespan="off")
    try:
        uvicorn.Server(config).run()
    finally:
        cluster.namespaces.close()
        cluster.close()


if __name__ == "__main__":
    main()
