"""pytest fixtures: a seeded namespace per test session and per xdist worker, on the shared cluster.

    def test_order_flow(localdev_env, pg, dynamodb, s3, sqs, mongo):
        ...   # real clients, pointed at this session's own namespace

The client fixtures come from the services: each declares its own (`Service.pytest_clients`), and one the
cluster does not run skips the test that asks for it.

- `localdev_namespace` (session): creates ``pytest-<run id>-<worker>``, seeded, deleted at the end
  (kept with --localdev-keep; --localdev-namespace NAME reuses an existing one). It carries a short TTL
  (--localdev-ttl, default 1h), so a killed run leaves nothing that `localdev ns gc` does not remove.
- The cluster is started if it is not running (one `up` for N xdist workers: `up` holds a file lock),
  unless --localdev-no-autostart. --localdev-ephemeral starts a private throwaway cluster instead, which dies
  with the session even on `kill -9` (localdev.ephemeral: a reaper process, testcontainers' labels).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from localdev.errors import LocalDevError
from localdev.services.base import PytestClient, Service


def pytest_addoption(parser):
    group = parser.getgroup("localdev", "localdev namespaces")
    group.addoption("--localdev-keep", action="store_true", help="keep the session's namespace at the end")
    group.addoption("--localdev-namespace", metavar="NAME", help="use this existing namespace (e.g. the PR's)")
    group.addoption("--localdev-no-autostart", action="store_true", help="fail instead of starting the cluster")
    group.addoption("--localdev-ephemeral", action="store_true",
                    help="a private throwaway cluster for this session instead of the shared one")
    group.addoption("--localdev-ttl", default="1h", help="TTL of the session's namespace (default 1h)")
    group.addoption("--localdev-no-seed", action="store_true", help="do not apply the project's seeds")


def _run_id() -> str:
    # xdist gives every worker of one run the same uid; a plain run makes its own.
    uid = os.environ.get("PYTEST_XDIST_TESTRUNUID") or secrets.token_hex(4)
    return uid[:8].lower()


def namespace_name(run_id: str, worker: str) -> str:
    return f"pytest-{run_id}-{worker}"[:40]


class _Session:
    """The cluster this session uses: the shared one (local, or remote with LOCALDEV_URL or `localdev login`),
    or a private one it owns."""

    def __init__(self, config):
        from localdev import config as config_mod
        from localdev.agent_client import AgentClient
        from localdev.cluster import Cluster
        from localdev.profile import connect, remote

        self.pytest_config = config
        self.ephemeral = config.getoption("--localdev-ephemeral")
        self.project = config_mod.load(start=Path(str(config.rootpath)))
        self.cluster: Cluster | None = None
        self._private = ExitStack()
        self.client: AgentClient | None = None
        if self.ephemeral:
            pass  # made by ensure_up (localdev.ephemeral)
        elif remote() is not None:
            self.client = connect()  # a shared cluster on another machine: nothing to start here
        else:
            self.cluster = Cluster()
            self.client = AgentClient(self.cluster.state.home)

    def ensure_up(self) -> None:
        if self.ephemeral:
            from localdev.ephemeral import ephemeral_cluster

            eph = self._private.enter_context(ephemeral_cluster(config=self.project))
            self.cluster, self.client = eph.cluster, eph.client
            return
        assert self.client is not None
        if self.client.ping():
            return
        if self.cluster is None:
            raise LocalDevError(f"the shared cluster at {self.client.url} does not answer")
        if self.pytest_config.getoption("--localdev-no-autostart"):
            raise pytest.UsageError(f"the localdev cluster in {self.cluster.state.home} is not running and "
                                    "--localdev-no-autostart was given: run `localdev up`")
        self.cluster.up()

    def close(self) -> None:
        self._private.close()  # an ephemeral cluster is removed (and its reaper told so)
        if self.cluster is not None:  # the pools an `up` from this process made; the cluster keeps running
            self.cluster.close()


@pytest.fixture(scope="session")
def _localdev_session(request):
    session = _Session(request.config)
    try:
        session.ensure_up()
    except LocalDevError as exc:
        session.close()
        pytest.fail(f"localdev could not start the cluster: {exc}", pytrace=False)
    yield session
    session.close()


@pytest.fixture(scope="session")
def localdev_cluster(_localdev_session):
    """The running cluster (started if needed); None when the session uses a remote shared cluster."""
    return _localdev_session.cluster


@pytest.fixture(scope="session")
def localdev_client(_localdev_session):
    """A client of the cluster's agent (local socket, or the remote shared cluster's URL and token)."""
    return _localdev_session.client


@pytest.fixture(scope="session")
def localdev_namespace(request, localdev_client) -> Iterator[str]:
    """This session's (this worker's) namespace name."""
    config = request.config
    client = localdev_client
    given = config.getoption("--localdev-namespace")
    if given:
        client.get(given)  # exists, or a clear error
        yield given
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = namespace_name(_run_id(), worker)
    seeds = None
    if not config.getoption("--localdev-no-seed"):
        from localdev import config as config_mod

        seeds_dir = config_mod.load(start=Path(str(config.rootpath))).seeds_dir
        seeds = seeds_dir if seeds_dir.is_dir() else None
    client.create(name, ttl=config.getoption("--localdev-ttl"), labels=["owner=pytest", f"worker={worker}"],
                  seed=seeds is not None, seeds_dir=seeds)
    yield name
    if not config.getoption("--localdev-keep"):
        client.delete(name, missing_ok=True)


@pytest.fixture(scope="session")
def localdev_env(localdev_client, localdev_namespace) -> Iterator[dict]:
    """The namespace's `ns env` keys; also set in os.environ for the session, restored afterwards."""
    env = localdev_client.env(localdev_namespace)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def localdev_reset(localdev_client, localdev_namespace) -> str:
    """Opt-in, per test: puts the session's namespace back to its seeded state (`ns reset`) before the test,
    keeping its credentials, so `localdev_env` and the client fixtures stay valid. Connections the
    namespace's PostgreSQL database had are ended by the reset (psycopg pools reconnect)."""
    localdev_client.reset(localdev_namespace)
    return localdev_namespace


@pytest.fixture(scope="session")
def localdev_services(localdev_client, localdev_namespace) -> list[str]:
    """The services the session's namespace has."""
    return localdev_client.get(localdev_namespace)["services"]


def _client_fixture(service: type[Service], client: PytestClient):
    """A fixture from a service's PytestClient: skips when the session's namespace has no such service."""

    def fixture(localdev_services, localdev_env):
        if service.name not in localdev_services:
            pytest.skip(f"the localdev cluster does not run {service.name}, which the {client.name!r} fixture needs")
        yield from client.make(localdev_env)

    fixture.__name__ = client.name
    fixture.__doc__ = client.doc
    return pytest.fixture(scope=client.scope, name=client.name)(fixture)


def _declare_client_fixtures(namespace: dict) -> None:
    """One fixture per client every registered service declares (`pg`, `dynamodb`, `s3`, `sqs`, `mongo`, ...)."""
    from localdev.services import service_classes

    for cls in service_classes().values():
        for client in cls.pytest_clients():
            if client.name in namespace:
                raise LocalDevError(f"the {cls.name} service declares a pytest fixture {client.name!r} that "
                                    "another service or the plugin already has")
            namespace[client.name] = _client_fixture(cls, client)


_declare_client_fixtures(globals())
