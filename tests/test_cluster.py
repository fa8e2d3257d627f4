"""The foundation, end to end on real PostgreSQL started the way users start it."""

import json
import os
import signal
import socket
import subprocess

import psycopg
import pytest

from conftest import open_pools, write_config


def admin_conn(handle):
    return psycopg.connect(handle.cluster.services["postgres"].admin_url(), autocommit=True)


def test_up_status_connect_down_up_keeps_data_purge_removes(make_cluster):
    h = make_cluster(agent=False)
    status = json.loads(h.cli("status", "--json", check=True).stdout)
    assert status["services"]["postgres"]["state"] == "healthy"
    port = status["services"]["postgres"]["port"]
    with admin_conn(h) as conn:
        conn.execute("CREATE TABLE kept (v text)")
        conn.execute("INSERT INTO kept VALUES ('still here')")
    pg = h.cluster.services["postgres"]
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres", "-Atc",
                          "select v from kept"], env={**os.environ, "PGPASSWORD": pg.admin_password},
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "still here"
    assert "database system is ready" in h.cli("logs", "postgres", "--tail", "50", check=True).stdout

    h.cli("down", check=True)
    assert json.loads(h.cli("status", "--json", check=True).stdout)["services"]["postgres"]["state"] == "stopped"
    with pytest.raises(psycopg.OperationalError):
        admin_conn(h)
    h.cli("up", check=True)
    with admin_conn(h) as conn:
        assert conn.execute("select v from kept").fetchone()[0] == "still here"

    data_dir = pg.server_root
    assert (data_dir / "pgdata" / "PG_VERSION").exists()
    h.cli("down", "--purge", check=True)
    assert not data_dir.exists() and not pg.data_dir.exists()
    assert not (h.home / "secrets.json").exists()


def test_killed_server_is_reported_and_repaired_by_up(make_cluster):
    h = make_cluster(agent=False)
    pid = h.cluster.runtime.state("postgres").pid
    os.kill(pid, signal.SIGKILL)
    h.wait_stopped("postgres", 10)
    status = json.loads(h.cli("status", "--json").stdout)
    assert status["services"]["postgres"]["state"] == "dead"
    assert f"pid {pid}" in status["services"]["postgres"]["detail"]
    h.cli("up", check=True)
    with admin_conn(h) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_two_concurrent_up_start_one_cluster(tmp_path):
    project = tmp_path / "project"
    write_config(project, ["postgres"])
    env = {**os.environ, "LOCALDEV_HOME": str(tmp_path / "home")}
    env.pop("LOCALDEV_CONFIG", None)
    import sys

    procs = [subprocess.Popen([sys.executable, "-m", "localdev.cli", "up", "--json"], cwd=project, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        outs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        pids = {json.loads(o)["services"]["postgres"]["pid"] for o, _ in outs}
        assert len(pids) == 1
        port = json.loads(outs[0][0])["services"]["postgres"]["port"]
        # Backends rename themselves ("postgres: ..."), so only postmasters match their own argv.
        postmasters = subprocess.run(["pgrep", "-f", f"bin/postgres -D .* -p {port} "], capture_output=True,
                                     text=True).stdout.split()
        assert postmasters == [str(pids.pop())]
    finally:
        subprocess.run([sys.executable, "-m", "localdev.cli", "down", "--purge"], cwd=project, env=env)


def test_bad_config_exits_2_names_file_and_key_and_starts_nothing(tmp_path):
    import sys

    project = tmp_path / "project"
    project.mkdir()
    (project / "localdev.toml").write_text('[services.postgres]\nport = "fifty"\n')
    env = {**os.environ, "LOCALDEV_HOME": str(tmp_path / "home")}
    env.pop("LOCALDEV_CONFIG", None)
    proc = subprocess.run([sys.executable, "-m", "localdev.cli", "up"], cwd=project, env=env, capture_output=True, text=True)
    assert proc.returncode == 2
    assert f"{project / 'localdev.toml'}: services.postgres.port: expected int" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "home" / "run" / "postgres" / "pid").exists()
    (project / "localdev.toml").write_text("[services.postgres\n")
    proc = subprocess.run([sys.executable, "-m", "localdev.cli", "up"], cwd=project, env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and "invalid TOML" in proc.stderr


def test_config_in_pyproject_is_found_upward(tmp_path):
    from localdev.config import load

    (tmp_path / "pyproject.toml").write_text('[project]\nname="x"\n[tool.localdev]\nruntime = "native"\n'
                                            '[tool.localdev.services.postgres]\nport = 16543\n')
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    cfg = load(start=sub, environ={})
    assert cfg.path == tmp_path / "pyproject.toml" and cfg.services["postgres"]["port"] == 16543


def test_occupied_port_is_a_clear_error_and_nothing_starts(tmp_path):
    import sys

    project = tmp_path / "project"
    path = write_config(project, ["postgres", "dynamodb"])
    # the second service's port is taken: the first must not be started either
    port = int([l for l in path.read_text().splitlines() if l.startswith("port")][1].split("=")[1])
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", port))
    blocker.listen()
    env = {**os.environ, "LOCALDEV_HOME": str(tmp_path / "home")}
    env.pop("LOCALDEV_CONFIG", None)
    try:
        proc = subprocess.run([sys.executable, "-m", "localdev.cli", "up"], cwd=project, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert f"port {port} on 127.0.0.1 is already in use" in proc.stderr and "nothing was started" in proc.stderr
        assert not list((tmp_path / "home" / "run").glob("*/pid"))
    finally:
        blocker.close()
        subprocess.run([sys.executable, "-m", "localdev.cli", "down", "--purge"], cwd=project, env=env)


def test_listens_on_loopback_only_and_secrets_are_private(make_cluster):
    h = make_cluster()
    port = h.cluster.services["postgres"].port
    listeners = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
    addrs = {line.split()[3] for line in listeners.splitlines()}
    assert addrs == {f"127.0.0.1:{port}"}, addrs
    for path in (h.home / "secrets.json", h.home / "cluster.json"):
        assert (path.stat().st_mode & 0o777) == 0o600
    assert (h.home.stat().st_mode & 0o777) == 0o700
    assert h.cluster.services["postgres"].admin_password not in (h.home / "logs" / "postgres.log").read_text()


def test_doctor_reports_postgres(make_cluster):
    h = make_cluster(agent=False)
    proc = h.cli("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(proc.stdout)}
    assert checks["postgres binaries"]["ok"] and "PostgreSQL" in checks["postgres binaries"]["detail"]


@pytest.mark.parametrize("toml,needle", [
    ('runtime = "kubernetes"\n', "runtime: 'kubernetes' is not allowed"),
    ('[services.postgres]\nport = 0\n', "services.postgres.port: 0 is not a TCP port"),
    ('[services.postgres]\nport = 5432\n[services.dynamodb]\nport = 5432\n', "is also the port of postgres"),
    ('[services.aws]\nflavor = "moto"\n', "services.aws.flavor: 'moto' is not allowed"),
    ('[services.mongo]\nflavor = "mongodb"\n', 'flavor = "mongodb" runs only in containers'),
    ('[services.memcached]\nport = 11211\n', "services.memcached: unknown service"),
    ('[namespaces]\ndefault_ttl = "1y"\n', "namespaces.default_ttl"),
    ('[services.postgres]\nenabled = "perhaps"\n', "services.postgres.enabled: expected bool"),
    ('[services.postgres]\nbin_dir = "$(rm -rf ~)"\n', "bin_dir = '$(rm -rf ~)': no postgres and initdb there"),
    ('services = "all"\n', "services: expected a table"),
])
def test_bad_config_catalogue_exits_2_and_starts_nothing(tmp_path, toml, needle):
    import sys

    project = tmp_path / "project"
    project.mkdir()
    (project / "localdev.toml").write_text('runtime = "native"\n' * ("runtime" not in toml) + toml)
    env = {**os.environ, "LOCALDEV_HOME": str(tmp_path / "home")}
    env.pop("LOCALDEV_CONFIG", None)
    proc = subprocess.run([sys.executable, "-m", "localdev.cli", "up"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert not list((tmp_path / "home" / "run").glob("*/pid")) if (tmp_path / "home" / "run").exists() else True


def test_up_has_the_agent_it_starts_check_each_service_and_checks_itself_when_the_agent_cannot(make_cluster):
    """The agent `up` starts beside the services makes each readiness request (with its warm clients), so the
    `up` command need not load every client library; where the agent does not run a service, or is gone,
    `up`'s own process checks."""
    from localdev.agent_client import AgentClient
    from localdev.errors import BadInput, NotFound

    h = make_cluster(services=("postgres", "mongo"))
    log = h.cluster._native().log_path("agent")
    checked = "POST /services/postgres/ready by local -> 200"
    assert checked in log.read_text() and "POST /services/mongo/ready by local -> 200" in log.read_text()
    with pytest.raises(NotFound):  # an agent without such a route (an older one) is told apart
        AgentClient(h.home).request("POST", "/no-such-route")
    # `up` waited for the agent's start-up work; asked again, it is over, and a bad wait is a sentence
    assert AgentClient(h.home).request("POST", "/warm", {"timeout": 0}) == {"warm": True}
    for bad in ("soon", "nan", -1):
        with pytest.raises(BadInput, match="timeout must be seconds"):
            AgentClient(h.home).request("POST", "/warm", {"timeout": bad})
    assert h.cluster._ready_through_agent(h.cluster.services["dynamodb"], alive=lambda: True) is False
    h.cluster._native().stop("agent", h.cluster.agent_spec())
    assert h.cluster._ready_through_agent(h.cluster.services["postgres"], alive=lambda: True) is False
    h.cli("down", check=True)
    before = log.read_text().count(checked)
    h.cli("up", check=True)  # a new agent, and it checks again
    assert log.read_text().count(checked) > before
    with admin_conn(h) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_a_cluster_object_gives_back_its_pools_on_a_second_up_at_down_and_at_close(make_cluster):
    """A process that keeps a Cluster (the pytest plugin's session, a library user, the agent's own `--up`)
    and brings it up again, down, or closes it is left with no pool of its own open: each holds a worker
    thread and a PostgreSQL connection, and one dropped unclosed was only collected, if ever, by the garbage
    collector in a thread of its own, which psycopg_pool cannot join there."""
    h = make_cluster(["postgres"])
    before = {id(p) for p in open_pools()}
    admin, registry = h.cluster.services["postgres"].pool(), h.cluster.namespaces.pool()
    assert admin.closed is False and registry.closed is False
    h.cluster.up(services=["postgres"])  # its services are made again from the config: the old ones are closed
    assert admin.closed and not registry.closed
    assert h.cluster.namespaces.list() == []  # still usable: what it needs is made again
    h.cluster.services["postgres"].pool()
    h.cluster.close()
    assert registry.closed
    assert [p for p in open_pools() if id(p) not in before] == []
    assert h.cli("ns", "create", "after-close", check=True).returncode == 0  # the cluster kept running
    h.cluster.namespaces.pool()
    h.cluster.down()
    assert [p for p in open_pools() if id(p) not in before] == []


def test_services_asking_for_the_admin_pool_at_once_get_one_pool(make_cluster):
    """A seeded create asks every service at once, and redis's asks PostgreSQL's admin pool too: of two pools
    made side by side, one was dropped open (its worker thread and connection kept until collected)."""
    import threading

    h = make_cluster(["postgres"])
    pg = h.cluster.services["postgres"]
    pg.close()
    before = {id(p) for p in open_pools()}
    start, got = threading.Barrier(8), []

    def ask():
        start.wait()
        got.append(pg.pool())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len({id(p) for p in got}) == 1
    assert [p for p in open_pools() if id(p) not in before] == [got[0]]
