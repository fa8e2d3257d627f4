"""Namespaces on the shared cluster through the real agent and CLI, checked with real PostgreSQL clients."""

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from localdev.waiting import TimedOut, poll_until

# A PostgreSQL-only cluster's namespace: exactly what that service declares (no AWS keys for AWS services
# the cluster does not run).
ENV_KEYS_PG = {"LOCALDEV_NAMESPACE", "DATABASE_URL", "PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"}


def registry_names(h) -> list[str]:
    return [n["name"] for n in json.loads(h.cli("ns", "list", "--json", check=True).stdout)]


def pg_objects(h, name: str) -> tuple[bool, bool]:
    db = "ns_" + name.replace("-", "_")
    with psycopg.connect(h.cluster.services["postgres"].admin_url(), autocommit=True) as conn:
        has_db = conn.execute("select 1 from pg_database where datname=%s", (db,)).fetchone() is not None
        has_role = conn.execute("select 1 from pg_roles where rolname=%s", (db,)).fetchone() is not None
    return has_db, has_role


def test_two_namespaces_are_isolated_and_delete_removes_everything(shared_cluster):
    h = shared_cluster
    h.cli("ns", "create", "iso-a", "--ttl", "2h", "--label", "pr=1", "--no-seed", check=True)
    h.cli("ns", "create", "iso-b", "--no-seed", check=True)
    a, b = h.ns_env("iso-a"), h.ns_env("iso-b")
    assert set(a) == ENV_KEYS_PG and a["PGDATABASE"] == "ns_iso_a" and a["PGUSER"] == "ns_iso_a"
    assert a["PGPASSWORD"] != b["PGPASSWORD"]  # (random AWS keys per namespace: tests/test_units.py)

    for env in (a, b):
        with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
            conn.execute("create table t (v text)")
            conn.execute("insert into t values (%s)", (env["LOCALDEV_NAMESPACE"],))
            assert conn.execute("select v from t").fetchall() == [(env["LOCALDEV_NAMESPACE"],)]

    # b's role may not reach a's database, nor postgres/template1 (which would list every database)
    for db in ("ns_iso_a", "postgres", "template1", "localdev"):
        with pytest.raises(psycopg.OperationalError, match="permission denied|CONNECT privilege"):
            psycopg.connect(host=b["PGHOST"], port=b["PGPORT"], user=b["PGUSER"], password=b["PGPASSWORD"], dbname=db)
    # wrong password for a's role
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(host=a["PGHOST"], port=a["PGPORT"], user=a["PGUSER"], password=b["PGPASSWORD"], dbname="ns_iso_a")

    # psql with the shell export lands in the namespace, as its role
    shell = h.cli("ns", "env", "iso-a", "--format", "shell", check=True).stdout
    out = subprocess.run(["bash", "-c", shell + "psql -Atc 'select current_user, current_database(), count(*) from t'"],
                         capture_output=True, text=True, env={"PATH": os.environ["PATH"]}, check=True).stdout
    assert out.strip() == "ns_iso_a|ns_iso_a|1"

    listing = h.cli("ns", "list", check=True).stdout
    assert "iso-a" in listing and "pr=1" in listing and a["PGPASSWORD"] not in listing
    assert a["PGPASSWORD"] not in h.cli("ns", "list", "--json", check=True).stdout

    assert h.cli("ns", "delete", "iso-a", check=True).returncode == 0
    assert pg_objects(h, "iso-a") == (False, False)
    assert h.cli("ns", "delete", "iso-a").returncode == 1
    assert h.cli("ns", "delete", "iso-a", "--missing-ok").returncode == 0
    assert h.cli("ns", "env", "iso-a").returncode == 1
    h.cli("ns", "delete", "iso-b", check=True)


def test_create_print_env_is_one_eval(shared_cluster):
    """`eval "$(localdev ns create NAME --print-env shell)"`: created, seeded and in the environment in one call."""
    h = shared_cluster
    script = (f"eval \"$({sys.executable} -m localdev.cli ns create pe-one --print-env shell)\" && "
              "psql -Atc 'select current_user, current_database()' && echo $LOCALDEV_NAMESPACE")
    out = subprocess.run(["bash", "-c", script], cwd=h.project, capture_output=True, text=True,
                         env={**h.env, "PATH": os.environ["PATH"]}, check=True).stdout
    assert out.split() == ["ns_pe_one|ns_pe_one", "pe-one"]
    assert h.cli("ns", "create", "pe-one", "--exist-ok", "--print-env", "json", check=True).stdout.strip().startswith("{")
    assert h.cli("ns", "create", "pe-two", "--json", "--print-env", "json").returncode == 2
    h.cli("ns", "delete", "pe-one", check=True)


def test_existing_name_is_an_error_unless_exist_ok(shared_cluster):
    h = shared_cluster
    h.cli("ns", "create", "dup", "--no-seed", check=True)
    proc = h.cli("ns", "create", "dup", "--no-seed")
    assert proc.returncode == 1 and "already exists" in proc.stderr
    assert h.cli("ns", "create", "dup", "--no-seed", "--exist-ok").returncode == 0
    h.cli("ns", "delete", "dup", check=True)


@pytest.mark.parametrize("args", [
    ["ns", "create", "PR-1"], ["ns", "create", "a;drop"], ["ns", "create", "x" * 41], ["ns", "create", ""],
    ["ns", "create", "ünicode"], ["ns", "create", "ok-name", "--ttl", "2w"], ["ns", "create", "ok-name", "--label", "nolabel"],
    ["ns", "create", "x'; DROP DATABASE postgres; --"], ["ns", "env", "ok-name", "--format", "yaml"],
    ["ns", "delete", "$(rm -rf ~)"], ["ns", "create", "ok-name", "--seeds", "/nonexistent/dir"],
    ["ns", "create", "ok-name", "--ttl", "0h"], ["ns", "create", "ok-name", "--ttl", "999d"],
    ["ns", "create", "ok-name", "--ttl", "-1h"], ["ns", "create", "ok-name", "--ttl", "$(reboot)"],
    ["ns", "create", "ok-name", "--label", "Bad=1"], ["ns", "create", "ok-name", "--label", "=x"],
    ["ns", "create", "../../etc/passwd"], ["ns", "create", "ok-name", "--from-ci"], ["ns", "create", "--from-ci"],
    ["ns", "create", "a b"], ["ns", "create", "ok_name"], ["ns", "create", "ok-name\n"], ["ns", "env", "PR-1"],
    ["ns", "env", "ok-name", "--format", "shell; rm -rf ~"], ["seed", "x'; DROP DATABASE postgres; --"],
    ["seed", "ok-name", "--seeds", "/nonexistent/dir"], ["logs", "memcached"], ["up", "--runtime", "podman"],
    ["ns", "create"], ["ns", "frobnicate"], ["ns", "create", "ok-name", "--print-env", "yaml"],
])
def test_bad_input_exits_2_and_changes_nothing(shared_cluster, args):
    h = shared_cluster
    before = registry_names(h)
    proc = h.cli(*args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    # usage errors too: one line "localdev: <problem> (see `localdev ... --help`)"
    assert proc.stderr.startswith("localdev: ") and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert registry_names(h) == before
    assert "ok-name" not in before


def test_concurrent_creates(shared_cluster):
    h = shared_cluster
    distinct = [f"conc-{i}" for i in range(16)]
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda n: h.cli("ns", "create", n, "--no-seed"), distinct))
    assert [r.returncode for r in results] == [0] * 16, [r.stderr for r in results if r.returncode]
    with ThreadPoolExecutor(8) as pool:
        same = list(pool.map(lambda _: h.cli("ns", "create", "conc-same", "--no-seed"), range(8)))
    codes = sorted(r.returncode for r in same)
    assert codes == [0] + [1] * 7, [r.stderr for r in same]
    assert all("already exists" in r.stderr for r in same if r.returncode)
    names = registry_names(h)
    assert set(distinct + ["conc-same"]) <= set(names)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: h.cli("ns", "delete", n, check=True), distinct + ["conc-same"]))
    for n in distinct + ["conc-same"]:
        assert pg_objects(h, n) == (False, False)


def test_gc_collects_expired_not_live(shared_cluster):
    h = shared_cluster
    h.cli("ns", "create", "short", "--ttl", "1s", "--no-seed", check=True)
    h.cli("ns", "create", "long", "--ttl", "1h", "--no-seed", check=True)
    time.sleep(1.5)
    assert "short" in h.cli("ns", "gc", "--dry-run", check=True).stdout
    assert "short" in registry_names(h)
    out = h.cli("ns", "gc", check=True).stdout
    assert "short" in out and "long" not in out
    names = registry_names(h)
    assert "short" not in names and "long" in names
    assert pg_objects(h, "short") == (False, False)
    h.cli("ns", "delete", "long", check=True)


def test_agent_reaps_expired_namespaces_by_itself(make_cluster):
    h = make_cluster(extra="[agent]\nreap_interval = 1\n")
    h.cli("ns", "create", "reap-me", "--ttl", "1s", "--no-seed", check=True)
    h.cli("ns", "create", "keep-me", "--ttl", "1h", "--no-seed", check=True)
    poll_until(lambda: "reap-me" not in registry_names(h), 20, "the agent to reap reap-me")
    assert registry_names(h) == ["keep-me"]
    assert pg_objects(h, "reap-me") == (False, False)


def test_from_ci_name(shared_cluster):
    h = shared_cluster
    h.cli("ns", "create", "--from-ci", "--no-seed", check=True, env={"GITHUB_REF": "refs/pull/77/merge", "CI": "true"})
    assert "pr-77" in registry_names(h)
    h.cli("ns", "delete", "pr-77", check=True)


def test_interrupted_create_is_reported_and_removable(shared_cluster):
    """A create that dies after PostgreSQL did its part leaves a row nobody holds: list says so, delete cleans it."""
    h = shared_cluster
    script = f"""
import os
from localdev.cluster import Cluster
cluster = Cluster(home={str(h.home)!r})
pg = cluster.services["postgres"]
real = pg.create_namespace
def create_then_die(ns):
    real(ns)
    os._exit(9)
pg.create_namespace = create_then_die
cluster.namespaces.create("crashed", seed=False)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=h.env)
    assert proc.returncode == 9, proc.stderr
    assert pg_objects(h, "crashed") == (True, True)
    item = [n for n in json.loads(h.cli("ns", "list", "--json", check=True).stdout) if n["name"] == "crashed"][0]
    assert item["state"] == "interrupted"
    assert h.cli("ns", "env", "crashed").returncode == 1
    h.cli("ns", "delete", "crashed", check=True)
    assert pg_objects(h, "crashed") == (False, False)
    assert "crashed" not in registry_names(h)


def test_killed_server_comes_back_without_any_command(make_cluster):
    h = make_cluster()
    h.cli("ns", "create", "survivor", "--no-seed", check=True)
    env = h.ns_env("survivor")
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("create table t (v int)")
        conn.execute("insert into t values (42)")
    old = h.cluster.runtime.state("postgres").pid
    os.kill(old, signal.SIGKILL)
    try:
        h.wait_restarted("postgres", old, 90)  # generous: a loaded 2-core CI machine
    except TimedOut as e:
        pytest.fail(f"{e}; the agent's log: " + h.cli("logs", "agent").stdout[-2000:])
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        assert conn.execute("select v from t").fetchone() == (42,)

    def postgres_events() -> list[str]:
        events = json.loads(h.cli("status", "--json", check=True).stdout)["events"]
        return [e["event"] for e in events if e["service"] == "postgres"][-2:]
    # (the agent records "restarted" after its after-start step: a moment after the server answers again)
    poll_until(lambda: postgres_events() == ["died", "restarted"], 30, "the restart to be recorded")
    assert h.cli("ns", "create", "after-restart", "--no-seed").returncode == 0


def test_killed_agent_is_reported_and_restored_by_up(make_cluster):
    h = make_cluster()
    h.cli("ns", "create", "kept", "--no-seed", check=True)
    socket_path = h.home / "run" / "agent.sock"
    assert (socket_path.stat().st_mode & 0o777) == 0o600
    os.kill(h.cluster._native().state("agent").pid, signal.SIGKILL)
    time.sleep(0.3)
    status = json.loads(h.cli("status", "--json", check=True).stdout)
    assert status["agent"]["running"] is False and "gone" in status["agent"]["detail"]
    proc = h.cli("ns", "list")
    assert proc.returncode == 1 and "localdev up" in proc.stderr
    h.cli("up", check=True)
    assert registry_names(h) == ["kept"]
    assert (socket_path.stat().st_mode & 0o777) == 0o600


def test_namespace_commands_do_not_import_service_clients_or_the_socket_module(shared_cluster):
    h = shared_cluster
    code = ("import sys, runpy\nsys.argv=['localdev','ns','list','--json']\n"
            "try:\n    runpy.run_module('localdev.cli', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print([m for m in ('psycopg','boto3','botocore','pymongo','socket') if m in sys.modules], file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=h.env, cwd=h.project)
    assert proc.stderr.strip().splitlines()[-1] == "[]", proc.stderr  # (socket: the local agent needs _socket)


def test_in_process_api_is_the_same_registry(shared_cluster):
    h = shared_cluster
    info = h.cluster.namespaces.create("api-made", ttl="30m", labels={"via": "api"})
    assert info["state"] == "ready" and info["labels"] == {"via": "api"}
    assert "api-made" in registry_names(h)
    assert h.ns_env("api-made") == h.cluster.namespaces.env("api-made")
    assert h.cli("ns", "delete", "api-made").returncode == 0


def test_advisory_locks_free_held_and_timed_out(make_cluster):
    """A free lock is taken by its try alone; one held elsewhere is refused to a try, waited for otherwise, and
    a timed wait that runs out raises LockTimeout and leaves the session's statement_timeout as it was."""
    from localdev.services.postgres.locks import LockTimeout, advisory_lock

    h = make_cluster(agent=False)
    pg = h.cluster.services["postgres"]
    with pg.connect() as holder, pg.connect() as other:
        with advisory_lock(other, "free", timeout="1s") as held:
            assert held is True
        with advisory_lock(holder, "taken"):
            with advisory_lock(other, "taken", try_only=True) as held:
                assert held is False
            t0 = time.monotonic()
            with pytest.raises(LockTimeout, match="waited 1s for the lock on 'taken'"):
                with advisory_lock(other, "taken", timeout="1s"):
                    pass
            assert time.monotonic() - t0 >= 1
            assert other.execute("SHOW statement_timeout").fetchone()[0] == "0"
        with advisory_lock(other, "taken", timeout="1s") as held:  # released by its holder: free again
            assert held is True

    import threading

    with pg.connect() as holder, pg.connect() as other:
        taken, release = threading.Event(), threading.Event()

        def hold() -> None:
            with advisory_lock(holder, "waited"):
                taken.set()
                release.wait(10)
        thread = threading.Thread(target=hold)
        thread.start()
        taken.wait(10)
        threading.Timer(0.3, release.set).start()
        t0 = time.monotonic()
        with advisory_lock(other, "waited", timeout="5s") as held:  # waited for, then taken
            assert held is True and time.monotonic() - t0 >= 0.25
        thread.join()


def test_a_pooled_connection_is_asked_nothing_at_checkout_unless_its_server_spoke(shared_cluster):
    """The agent's pools check a connection at checkout only when its socket has something to read (a
    session the server ended): a healthy one costs no round trip, an ended one is replaced, not handed out."""
    pg = shared_cluster.cluster.services["postgres"]
    pool = pg.make_pool(pg.admin_db, 1, "test-checkout")
    try:
        with pool.connection() as conn:
            pid = conn.info.backend_pid
        with pg.connect() as other:
            def last_query() -> tuple:
                return other.execute("SELECT query_start, query FROM pg_stat_activity WHERE pid = %s",
                                     (pid,)).fetchone()
            before = last_query()
            for _ in range(3):
                with pool.connection() as conn:
                    assert conn.info.backend_pid == pid
            assert last_query() == before  # no query reached the server
            other.execute("SELECT pg_terminate_backend(%s)", (pid,))
            poll_until(lambda: last_query() is None, 10, "the session to end")
        with pool.connection() as conn:
            assert conn.info.backend_pid != pid
            assert conn.execute("SELECT 42").fetchone() == (42,)
    finally:
        pool.close()
