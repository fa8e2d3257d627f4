"""The pytest plugin, exercised the way users run it: pytest in a subprocess on a sample project."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path


from conftest import write_config
from localdev.waiting import poll_until

SAMPLE = Path(__file__).parent / "plugin_project"


def project_for(handle, tmp_path, **extra_env) -> tuple[Path, dict]:
    """The sample project, with the cluster's localdev.toml, in its own directory; and the env to run it in."""
    project = tmp_path / "sample"
    shutil.copytree(SAMPLE, project)
    shutil.copy(handle.config_path, project / "localdev.toml")
    env = {**handle.env, "LOCALDEV_CONFIG": str(project / "localdev.toml"), **extra_env}
    return project, env


def run_pytest(project: Path, env: dict, *args: str, wait: bool = True):
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(project / "sample_orders.py"), *args]
    proc = subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not wait:
        return proc
    out, _ = proc.communicate(timeout=600)
    return proc.returncode, out


def pytest_namespaces(handle) -> list[str]:
    return [n["name"] for n in json.loads(handle.cli("ns", "list", "--json", check=True).stdout)
            if n["name"].startswith("pytest-")]


def test_serial_and_xdist_each_worker_own_namespace(shared_cluster, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    project, env = project_for(shared_cluster, tmp_path, SAMPLE_OUT=str(out_dir))
    code, out = run_pytest(project, env)
    assert code == 0, out
    assert "16 passed" in out
    code, out = run_pytest(project, env, "-n", "4")
    assert code == 0, out
    names = {p.read_text() for p in out_dir.iterdir()}
    assert len(names) == 5  # main + gw0..gw3
    assert {n.rsplit("-", 1)[1] for n in names} == {"main", "gw0", "gw1", "gw2", "gw3"}
    assert pytest_namespaces(shared_cluster) == []  # deleted at the end of each session


def test_two_runs_at_once(shared_cluster, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    project, env = project_for(shared_cluster, tmp_path, SAMPLE_OUT=str(out_dir))
    procs = [run_pytest(project, env, "-n", "2", wait=False) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stdout.read()) for p in procs]
    assert all(code == 0 for code, _ in results), results
    names = {p.read_text() for p in out_dir.iterdir()}
    assert len(names) == 4 and len({n.split("-")[1] for n in names}) == 2  # two run ids, two workers each
    assert pytest_namespaces(shared_cluster) == []


def test_killed_run_leaves_a_short_ttl_namespace_that_gc_removes(shared_cluster, tmp_path):
    project, env = project_for(shared_cluster, tmp_path, SAMPLE_SLEEP="60")
    proc = run_pytest(project, env, "--localdev-ttl", "3s", wait=False)
    left = poll_until(lambda: pytest_namespaces(shared_cluster), 60, "the run to create its namespace")
    assert len(left) == 1
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert pytest_namespaces(shared_cluster) == left  # nobody cleaned up...
    time.sleep(3.5)
    assert left[0] in shared_cluster.cli("ns", "gc", check=True).stdout  # ...but it expired
    assert pytest_namespaces(shared_cluster) == []


def test_keep_and_reuse_a_namespace(shared_cluster, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    project, env = project_for(shared_cluster, tmp_path, SAMPLE_OUT=str(out_dir))
    code, out = run_pytest(project, env, "--localdev-keep", "-k", "not writes and not more_work")
    assert code == 0, out
    kept = pytest_namespaces(shared_cluster)
    assert len(kept) == 1
    # reusing it: the seeded data is there, the name is the given one
    code, out = run_pytest(project, env, "--localdev-namespace", kept[0], "-k", "seeded")
    assert code == 0, out
    assert pytest_namespaces(shared_cluster) == kept  # not ours to delete
    shared_cluster.cli("ns", "delete", kept[0], check=True)


def test_autostart_once_for_several_workers_and_no_autostart(tmp_path):
    project = tmp_path / "sample"
    shutil.copytree(SAMPLE, project)
    write_config(project, ["postgres"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCALDEV_")}
    env["LOCALDEV_HOME"] = str(tmp_path / "home")
    code, out = run_pytest(project, env, "--localdev-no-autostart")
    assert code != 0 and "--localdev-no-autostart" in out
    try:
        code, out = run_pytest(project, env, "-n", "3")
        assert code == 0, out
        status = json.loads(subprocess.run([sys.executable, "-m", "localdev.cli", "status", "--json"], cwd=project,
                                           env=env, capture_output=True, text=True, check=True).stdout)
        assert status["services"]["postgres"]["state"] == "healthy" and status["agent"]["running"]
    finally:
        subprocess.run([sys.executable, "-m", "localdev.cli", "down", "--purge"], cwd=project, env=env)


def test_ephemeral_private_cluster(shared_cluster, tmp_path):
    project, env = project_for(shared_cluster, tmp_path)
    before = set(Path(tempfile_dir()).glob("localdev-ephemeral-*"))
    code, out = run_pytest(project, env, "--localdev-ephemeral")
    assert code == 0, out
    assert pytest_namespaces(shared_cluster) == []  # the shared cluster never saw it
    assert set(Path(tempfile_dir()).glob("localdev-ephemeral-*")) == before  # and it left nothing


def tempfile_dir() -> str:
    import tempfile

    return tempfile.gettempdir()
