"""Fixtures that start real clusters the way users do: a temp LOCALDEV_HOME, a localdev.toml, `up`.

- `make_cluster(services=[...], options={...}, agent=True)` -> a started `ClusterHandle` (function scope;
  torn down with `down --purge`).
- `shared_cluster` -> one PostgreSQL-only cluster with its agent for the whole session, for tests that
  only create namespaces.
- `free_port()` -> a port below 32768 free on 127.0.0.1 (Linux hands out client source ports above).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from localdev.cluster import Cluster

REPO = Path(__file__).resolve().parent.parent
from localdev.config import load as load_config
from localdev.ports import free_port  # noqa: F401  (tests import it from here)
from localdev.waiting import poll_until


def pytest_configure(config):
    """Where the container engine is required (CI's Podman, just started by scripts/engine.sh), give its first
    answers up to 30 s before the container test modules ask once with a 2 s timeout: a loaded 2-core machine
    once made that first ping miss, and a whole run stopped at collection."""
    if os.environ.get("LOCALDEV_TEST_DOCKER") == "required":
        from localdev.runtimes import docker_available
        from localdev.waiting import TimedOut

        try:
            poll_until(docker_available, 30, "the container engine", interval=0.5)
        except TimedOut:
            pass  # each module then says what is missing


def _toml_value(value) -> str:
    return json.dumps(value) if not isinstance(value, bool) else ("true" if value else "false")


def write_config(project: Path, services: list[str], options: dict | None = None, extra: str = "",
                 runtime: str = "native") -> Path:
    """A localdev.toml enabling exactly `services`, each on a free port, on `runtime` (never "auto": a
    reachable Docker Engine, as in CI, must not move the native tests onto containers)."""
    from localdev.services import service_classes

    options = options or {}
    lines = [f"runtime = {_toml_value(runtime)}", ""]
    for name in service_classes():
        lines.append(f"[services.{name}]")
        lines.append(f"enabled = {_toml_value(name in services)}")
        lines.append(f"port = {free_port()}")
        for key, value in options.get(name, {}).items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    project.mkdir(parents=True, exist_ok=True)
    path = project / "localdev.toml"
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


@dataclass
class ClusterHandle:
    cluster: Cluster
    home: Path
    project: Path
    config_path: Path

    @property
    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCALDEV_", "AWS_", "PG", "DATABASE_URL"))}
        env.update({"LOCALDEV_HOME": str(self.home), "LOCALDEV_CONFIG": str(self.config_path),
                    # the CLI subprocesses run this checkout's code, whatever the editable install points at
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))})
        return env

    def cli(self, *args: str, check: bool = False, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
        """Run the real `localdev` command (as a user would) against this cluster."""
        proc = subprocess.run([sys.executable, "-m", "localdev.cli", *args], cwd=self.project,
                              env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"localdev {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def wait_stopped(self, service: str, timeout: float) -> None:
        """Until the runtime sees `service` gone (a killed process or container); TimedOut after `timeout` s."""
        poll_until(lambda: not self.cluster.runtime.state(service).running, timeout, f"{service} to stop")

    def wait_restarted(self, service: str, old_pid: int, timeout: float) -> None:
        """Until `service` runs again under a new pid and is ready (the agent restarted it); TimedOut after."""
        def restarted() -> bool:
            st = self.cluster.runtime.state(service)
            return st.running and st.pid != old_pid and self.cluster.services[service].ready()

        poll_until(restarted, timeout, f"the agent to restart {service}")

    def close(self) -> None:
        """Stop the cluster and remove its data (the registry's pool first: it would hold PostgreSQL open)."""
        self.cluster.namespaces.close()
        self.cluster.down(purge=True)

    def ns_env(self, name: str) -> dict:
        return json.loads(self.cli("ns", "env", name, "--format", "json", check=True).stdout)

    def __getattr__(self, item):
        return getattr(self.cluster, item)


def clean_env(**extra) -> dict:
    """The environment of a process on another machine (network tests): nothing of this cluster's or of the
    caller's settings, this checkout's code, and `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LOCALDEV_", "AWS_", "PG", "DATABASE_URL", "MONGODB_URI", "REDIS_", "XDG_CONFIG"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env.update(extra)
    return env


def open_pools() -> list:
    """The psycopg pools this process holds open (a gc scan): what a test checks was given back."""
    import gc

    from psycopg_pool import ConnectionPool

    return [o for o in gc.get_objects() if isinstance(o, ConnectionPool) and not o.closed]


def start_cluster(tmp_path_factory, services, options=None, agent=True, extra="") -> ClusterHandle:
    root = tmp_path_factory.mktemp("cluster")
    home, project = root / "home", root / "project"
    config_path = write_config(project, list(services), options, extra)
    os.environ.pop("LOCALDEV_CONFIG", None)
    cfg = load_config(start=project, environ={})
    cluster = Cluster(home=home, config=cfg)
    handle = ClusterHandle(cluster, home, project, config_path)
    cluster.up(services=list(services), agent=agent)
    return handle


@pytest.fixture
def make_cluster(tmp_path_factory):
    made: list[ClusterHandle] = []

    def make(services=("postgres",), options: dict | None = None, agent: bool = True, extra: str = "") -> ClusterHandle:
        handle = start_cluster(tmp_path_factory, services, options, agent, extra)
        made.append(handle)
        return handle

    yield make
    for handle in made:
        handle.close()


@pytest.fixture(scope="session")
def shared_cluster(tmp_path_factory):
    # The reaper stays out of the way: tests here look at interrupted and expired namespaces themselves.
    handle = start_cluster(tmp_path_factory, ["postgres"], extra="[agent]\nreap_interval = 3600\n")
    yield handle
    handle.close()


def all_services() -> list[str]:
    from localdev.services import service_classes

    return list(service_classes())


ALL_SERVICES = all_services()


@pytest.fixture
def installed_service(tmp_path, monkeypatch):
    """Install a service the way a third-party package does: a distribution on sys.path whose metadata
    registers `name = "module:Class"` under the localdev.services entry points."""
    from localdev.services import GROUP, service_classes

    def install(name: str, target: str) -> None:
        dist = tmp_path / "site" / f"localdev_test_{name}-0.dist-info"
        dist.mkdir(parents=True)
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: localdev-test-{name}\nVersion: 0\n")
        (dist / "entry_points.txt").write_text(f"[{GROUP}]\n{name} = {target}\n")
        monkeypatch.syspath_prepend(str(tmp_path / "site"))
        service_classes.cache_clear()

    yield install
    service_classes.cache_clear()  # so the next lookup, once monkeypatch restores sys.path, no longer finds it


@pytest.fixture(scope="session")
def full_cluster(tmp_path_factory):
    """All four services (the light MiniStack flavor for aws), with the agent, for the whole session."""
    handle = start_cluster(tmp_path_factory, ALL_SERVICES, {"aws": {"flavor": "ministack"}},
                           extra="[agent]\nreap_interval = 3600\n")
    yield handle
    handle.close()


@pytest.fixture(scope="session", params=["localstack", "ministack"])
def aws_cluster(request, tmp_path_factory):
    """postgres, dynamodb and aws (behind the AWS gateway) per emulator flavor, with the agent, shared by the
    cross-namespace matrix and the peer suites (each makes namespaces of its own). `.flavor` names it."""
    handle = start_cluster(tmp_path_factory, ["postgres", "dynamodb", "aws"], {"aws": {"flavor": request.param}})
    handle.flavor = request.param
    yield handle
    handle.close()
