"""Ephemeral private clusters die with the test process, `kill -9` included (localdev.ephemeral, localdev.reaper).

On the container runtime (a real Docker Engine API: Podman's here) everything carries the session's
testcontainers label and nothing with it is left after the run; natively, no process of the cluster is left.
Only things labelled with the session ids these tests make are looked at or removed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest
from conftest import REPO, write_config

from localdev.runtimes import docker_available, engine_url
from localdev.waiting import poll_until

KILL_BOUND = 90  # seconds from `kill -9` until nothing of the session may remain
# LOCALDEV_TEST_DOCKER=required (CI, from scripts/engine.sh): run, and fail, rather than skip without an engine
needs_engine = pytest.mark.skipif(not docker_available() and os.environ.get("LOCALDEV_TEST_DOCKER") != "required",
                                  reason=f"no Docker Engine API answers at {engine_url()}: "
                                  "start one (CI: eval \"$(bash scripts/engine.sh)\") or set DOCKER_HOST")

HOLDER = textwrap.dedent('''
    import json, os, time
    from pathlib import Path

    def test_hold(localdev_cluster, localdev_env):
        status = localdev_cluster.status()
        labels = localdev_cluster.labels
        Path(os.environ["MARKER"]).write_text(json.dumps({
            "home": str(localdev_cluster.state.home), "database_url": localdev_env["DATABASE_URL"],
            "session": labels.get("org.testcontainers.session-id"),
            "pids": [status["agent"]["pid"]] + [s["pid"] for s in status["services"].values() if s["pid"]]}))
        time.sleep(600)
''')


def postgres_options(runtime: str) -> dict:
    image = os.environ.get("LOCALDEV_TEST_IMAGE_POSTGRES")
    return {"postgres": {"image": image}} if runtime == "docker" and image else {}


def engine():
    import docker

    return docker.DockerClient(base_url=engine_url())


def labelled(client, session: str) -> dict[str, list[str]]:
    filters = {"label": [f"org.testcontainers.session-id={session}"]}
    return {"containers": sorted(c.name for c in client.containers.list(all=True, filters=filters)),
            "volumes": sorted(v.name for v in client.volumes.list(filters=filters)),
            "networks": sorted(n.name for n in client.networks.list(filters=filters))}


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def kill_a_holding_run(tmp_path: Path, runtime: str) -> tuple[dict, float]:
    """Start `pytest --localdev-ephemeral` on `runtime`, wait until its test holds the cluster, `kill -9` it.
    Returns what the run wrote about its cluster, and when it was killed."""
    project = tmp_path / "project"
    write_config(project, ["postgres"], postgres_options(runtime), runtime=runtime)
    (project / "test_hold.py").write_text(HOLDER)
    marker = tmp_path / "marker.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCALDEV_HOME", "LOCALDEV_URL", "PYTEST_"))}
    env.pop("TESTCONTAINERS_RYUK_DISABLED", None)  # Ryuk is tried, and is absent here: our reaper alone
    env.update({"MARKER": str(marker), "PYTHONPATH": str(REPO)})
    run = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--localdev-ephemeral",
                            "test_hold.py"], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        poll_until(lambda: marker.exists() or run.poll() is not None, 240, "the run to hold its cluster")
        if not marker.exists():
            raise AssertionError(f"pytest exited {run.returncode}:\n{run.stdout.read().decode()}")  # type: ignore
        held = json.loads(marker.read_text())
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
    return held, time.monotonic()


@needs_engine
def test_kill_9_of_an_ephemeral_run_on_containers_leaves_nothing(tmp_path):
    held, killed_at = kill_a_holding_run(tmp_path, "docker")
    client = engine()
    try:
        session = held["session"]
        assert session
        gone = lambda: labelled(client, session) == {"containers": [], "volumes": [], "networks": []}  # noqa: E731
        assert not gone()  # it held a container, a volume and a network carrying the session's label
        poll_until(lambda: gone() and not any(alive(p) for p in held["pids"]) and
                   not Path(held["home"]).exists(), KILL_BOUND, "the reaper to remove the killed run's cluster")
        assert time.monotonic() - killed_at < KILL_BOUND
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(held["database_url"], connect_timeout=3)
    finally:
        client.close()


def test_kill_9_of_an_ephemeral_run_natively_leaves_no_process(tmp_path):
    held, killed_at = kill_a_holding_run(tmp_path, "native")
    assert held["session"] is None and len(held["pids"]) == 2  # the agent and PostgreSQL
    poll_until(lambda: not any(alive(p) for p in held["pids"]) and not Path(held["home"]).parent.exists(),
               KILL_BOUND, "the reaper to stop the killed run's cluster")
    assert time.monotonic() - killed_at < KILL_BOUND


@needs_engine
def test_ephemeral_cluster_labels_everything_with_the_session_and_removes_it(tmp_path):
    from testcontainers.core.labels import SESSION_ID

    from localdev.config import load
    from localdev.testing import ephemeral_cluster

    write_config(tmp_path, ["postgres"], postgres_options("docker"), runtime="docker")
    client = engine()
    try:
        with ephemeral_cluster(config=load(start=tmp_path, environ={})) as eph:
            assert eph.session_labels["org.testcontainers.session-id"] == SESSION_ID
            made = labelled(client, SESSION_ID)
            cid = eph.cluster.runtime.cluster_id
            assert made == {"containers": [f"localdev-{cid}-postgres"], "volumes": [f"localdev-{cid}-postgres-data"],
                            "networks": [f"localdev-{cid}"]}
            env = eph.client.create("t", with_env=True)["env"]
            with psycopg.connect(env["DATABASE_URL"]) as conn:
                assert conn.execute("SELECT current_user").fetchone() == ("ns_t",)
            root = eph.home.parent
        assert labelled(client, SESSION_ID) == {"containers": [], "volumes": [], "networks": []}
        assert not root.exists()
    finally:
        client.close()


@needs_engine
def test_the_reapers_sweep_removes_its_session_only(tmp_path):
    import uuid

    from localdev.reaper import sweep

    image = os.environ.get("LOCALDEV_TEST_IMAGE_POSTGRES") or "postgres:15.10-bookworm"
    ours, other = str(uuid.uuid4()), str(uuid.uuid4())  # both made by this test, nobody else's
    client = engine()
    try:
        for session in (ours, other):
            labels = {"org.testcontainers.session-id": session}
            client.containers.create(image, command=["true"], labels=labels)
            client.volumes.create(f"localdev-test-{session}", labels=labels)
            client.networks.create(f"localdev-test-{session}", labels=labels)
        assert sweep(client, f"org.testcontainers.session-id={ours}") == 3
        assert labelled(client, ours) == {"containers": [], "volumes": [], "networks": []}
        left = labelled(client, other)
        assert (len(left["containers"]), left["volumes"], left["networks"]) == (
            1, [f"localdev-test-{other}"], [f"localdev-test-{other}"])
    finally:
        sweep(client, f"org.testcontainers.session-id={other}")
        client.close()
