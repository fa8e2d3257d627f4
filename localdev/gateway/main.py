"""The gateway process: ``python -m localdev.gateway --home LOCALDEV_HOME``, started and supervised by the
cluster (`up`, the agent's supervisor). It reads the recorded cluster config for its ports and the
registry's address, listens on every port of a service behind it, and serves until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import signal
import ssl
from functools import partial
from typing import Any

from localdev.cluster import GATEWAY, Cluster
from localdev.gateway.http import MAX_HEAD, Backend
from localdev.gateway.registry import Registry
from localdev.gateway.server import Endpoint, Gateway
from localdev.gateway.stats import FILE, Stats
from localdev.ports import bind_tcp

log = logging.getLogger("localdev.gateway")
# Names under which S3 clients address buckets as `bucket.<name>` (virtual-hosted style); IPs never are.
VIRTUAL_BASES = ("localhost", "localhost.localstack.cloud", "s3.localhost.localstack.cloud")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


class _NoRegistry:
    """A cluster without PostgreSQL has no namespaces: every key is unknown."""

    async def caller(self, access_key: str):
        return None

    async def owner(self, bucket: str):
        return None

    def start(self, loop) -> None:
        pass

    def stop(self) -> None:
        pass


def _registry(cluster: Cluster) -> Any:
    if not cluster.has_registry:
        return _NoRegistry()
    from localdev.namespaces import REGISTRY_DB

    postgres: Any = cluster.services["postgres"]
    return Registry(lambda: postgres.connect(REGISTRY_DB), cluster.namespaces.pool)


async def serve(cluster: Cluster) -> None:
    loop = asyncio.get_running_loop()
    registry = _registry(cluster)
    registry.start(loop)
    stats_dir = cluster.state.run(GATEWAY)
    stats_dir.mkdir(parents=True, exist_ok=True)
    stats = Stats(stats_dir / FILE)
    config = cluster.config
    bases = {*VIRTUAL_BASES, *(h for h in (config.advertise_host, config.host) if h and not _is_ip(h))}
    gateway = Gateway(registry, stats, tuple(bases))
    servers = []
    for name in cluster.gateway_services():
        svc = cluster.services[name]
        endpoint = Endpoint(name, Backend(name, "127.0.0.1", svc.backend_port), svc.backend_secret, svc.behind_gateway)
        context = None
        if svc.tls:
            cert = cluster.server_cert()
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(cert.cert), str(cert.key))
        sock = bind_tcp(config.host, svc.port)
        servers.append(await asyncio.start_server(partial(gateway.handle, endpoint=endpoint), sock=sock,
                                                  ssl=context, limit=MAX_HEAD))
        log.info("gateway: %s on %s:%d (%s) -> 127.0.0.1:%d", name, config.host, svc.port,
                 "TLS" if context else "plain HTTP", svc.backend_port)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        stats.write()
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except TimeoutError:
            pass
    for server in servers:
        server.close()
    registry.stop()
    stats.write()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="localdev-gateway")
    parser.add_argument("--home", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(Cluster(home=args.home)))
