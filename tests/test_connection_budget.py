"""The connection budget: each namespace's PostgreSQL role has a CONNECTION LIMIT, and the server keeps
slots for localdev's own connections, so one namespace's pool-size bug never takes the others down."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import psycopg
import pytest
from conftest import REPO, write_config

from localdev.errors import BadInput

# PostgreSQL 15's texts (16 words the second one differently)
ROLE_LIMIT = 'FATAL:  too many connections for role "{}"'
SERVER_FULL = "FATAL:  remaining connection slots are reserved for non-replication superuser connections"


def _open(url: str, held: list, refused: list) -> None:
    try:
        held.append(psycopg.connect(url, connect_timeout=10))
    except psycopg.OperationalError as exc:
        refused.append(str(exc))


def _seeds(tmp_path):
    folder = tmp_path / "seeds" / "postgres"
    folder.mkdir(parents=True)
    (folder / "01.sql").write_text("CREATE TABLE IF NOT EXISTS orders (id int PRIMARY KEY, total int);\n"
                                   "INSERT INTO orders VALUES (1, 10), (2, 32) ON CONFLICT DO NOTHING;\n")
    return folder.parent


def test_a_namespace_past_its_limit_gets_postgres_error_while_others_work(make_cluster, tmp_path):
    handle = make_cluster(services=("postgres",), extra="[namespaces]\nmax_connections = 4\n")
    handle.cli("ns", "create", "hog", "--no-seed", "--max-connections", "3", check=True)
    hog_url = handle.ns_env("hog")["DATABASE_URL"]
    limit = 3
    held: list = []
    refused: list[str] = []
    try:
        for _ in range(limit):
            _open(hog_url, held, refused)
        assert (len(held), refused) == (limit, [])
        # the five past the limit, tried while the other namespace is created, seeded and queried
        over = threading.Thread(target=lambda: [_open(hog_url, held, refused) for _ in range(5)])
        over.start()
        seeds = _seeds(tmp_path)
        created = json.loads(handle.cli("ns", "create", "other", "--seeds", str(seeds), "--json", check=True).stdout)
        assert created["max_connections"] == 4  # the config's default
        handle.cli("seed", "other", "--seeds", str(seeds), check=True)
        other_url = handle.ns_env("other")["DATABASE_URL"]
        other = [psycopg.connect(other_url, connect_timeout=10) for _ in range(4)]  # its whole budget
        try:
            totals = [c.execute("SELECT sum(total) FROM orders").fetchone()[0] for c in other]
        finally:
            for conn in other:
                conn.close()
        over.join(60)
        assert totals == [42, 42, 42, 42]
        assert len(held) == limit and len(refused) == 5
        assert all(ROLE_LIMIT.format("ns_hog") in text for text in refused), refused
        # the registry answered throughout, and shows each budget
        listed = {n["name"]: n for n in json.loads(handle.cli("ns", "list", "--json", check=True).stdout)}
        assert (listed["hog"]["max_connections"], listed["other"]["max_connections"]) == (3, 4)
        assert [n["state"] for n in listed.values()] == ["ready", "ready"]
        table = handle.cli("ns", "list", check=True, env={"COLUMNS": "200"}).stdout
        assert "max conns" in table
    finally:
        for conn in held:
            conn.close()
    with handle.cluster.services["postgres"].connect() as admin:
        limits = dict(admin.execute("SELECT rolname, rolconnlimit FROM pg_roles WHERE rolname LIKE 'ns_%'").fetchall())
    assert limits == {"ns_hog": 3, "ns_other": 4}


def test_bad_max_connections_creates_nothing(make_cluster):
    handle = make_cluster(services=("postgres",))
    for bad in ("0", "-1", "abc", "2.5"):
        proc = handle.cli("ns", "create", "bad", "--max-connections", bad)
        assert proc.returncode == 2, (bad, proc.stderr)
        assert "--max-connections" in proc.stderr
    for bad in (0, -3, True, "5", 2.5):
        with pytest.raises(BadInput, match="invalid max_connections"):
            handle.cluster.namespaces.create("bad", max_connections=bad)
    # the agent's API refuses a bad body field the same way (exit 2 through the client)
    from localdev.agent_client import AgentClient

    with pytest.raises(BadInput, match="invalid max_connections"):
        AgentClient(handle.home).create("bad", max_connections=0)
    assert handle.cluster.namespaces.list() == []
    with handle.cluster.services["postgres"].connect() as admin:
        assert admin.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'ns_bad'").fetchone()[0] == 0
    # the in-process API takes one too; a re-create through the ALTER ROLE path keeps it
    info = handle.cluster.namespaces.create("api", max_connections=7)
    assert info["max_connections"] == 7 and handle.cluster.namespaces.get("api")["max_connections"] == 7
    ns = handle.cluster.namespaces
    with ns.pool().connection() as conn:
        row = ns._row(conn, "api")
    handle.cluster.services["postgres"].create_namespace(ns._namespace(row))
    with handle.cluster.services["postgres"].connect() as admin:
        assert admin.execute("SELECT rolconnlimit FROM pg_roles WHERE rolname = 'ns_api'").fetchone()[0] == 7


def test_a_full_server_leaves_the_registry_its_connections(make_cluster):
    """Namespaces together take every ordinary slot: the registry, create and delete keep working on the
    reserved ones, and one more namespace connection gets PostgreSQL's own refusal."""
    handle = make_cluster(services=("postgres",), options={"postgres": {"max_connections": 70}},
                          extra="[namespaces]\nmax_connections = 12\n")
    pg = handle.cluster.services["postgres"]
    reserved = pg.own_connections()
    assert reserved == 40 + 10 + 8  # registry pool, one-off connections, the admin pool
    with pg.connect() as admin:
        assert admin.execute("SHOW superuser_reserved_connections").fetchone()[0] == str(reserved)
    handle.cli("ns", "create", "a", "--no-seed", check=True)
    handle.cli("ns", "create", "b", "--no-seed", check=True)
    urls = [handle.ns_env(n)["DATABASE_URL"] for n in ("a", "b")]
    held: list = []
    refused: list[str] = []
    try:
        for i in range(24):  # both budgets: more than the 70 - 58 ordinary slots
            _open(urls[i % 2], held, refused)
        assert 0 < len(held) < 24 and len(refused) == 24 - len(held)
        assert all(SERVER_FULL in text for text in refused), refused
        with pg.connect() as admin:  # a superuser's connection, on a reserved slot
            backends = admin.execute("SELECT count(*) FROM pg_stat_activity "
                                     "WHERE backend_type = 'client backend'").fetchone()[0]
        assert backends - 1 == 70 - reserved  # every ordinary slot was taken when the refusals came
        listed = json.loads(handle.cli("ns", "list", "--json", check=True).stdout)
        assert [n["name"] for n in listed] == ["a", "b"]
        handle.cli("ns", "create", "c", "--no-seed", check=True)
        assert handle.cli("ns", "delete", "c", check=True).returncode == 0
    finally:
        for conn in held:
            conn.close()


def test_up_refuses_a_server_too_small_for_localdev_and_one_namespace(tmp_path):
    project = tmp_path / "project"
    config = write_config(project, ["postgres"], {"postgres": {"max_connections": 70}},
                          extra="[namespaces]\nmax_connections = 20\n")
    env = {"LOCALDEV_HOME": str(tmp_path / "home"), "LOCALDEV_CONFIG": str(config), "PYTHONPATH": str(REPO),
           "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "localdev.cli", "up"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert ("[services.postgres] max_connections = 70 leaves 12 connections for namespaces after localdev's own 58"
            in proc.stderr and "raise it to at least 78" in proc.stderr and "nothing was started" in proc.stderr)
    assert not (tmp_path / "home" / "cluster.json").exists()


def test_a_mongo_namespace_past_its_limit_is_refused_while_others_work(make_cluster):
    """The Mongo server (mongo-java-server, our launcher) holds a namespace's user to its budget too:
    authenticated connections past it fail their authentication, and closing one gives its slot back."""
    import pymongo
    from pymongo.errors import OperationFailure

    handle = make_cluster(services=("postgres", "mongo"), extra="[namespaces]\nmax_connections = 5\n")
    handle.cli("ns", "create", "hog", "--no-seed", "--max-connections", "3", check=True)
    handle.cli("ns", "create", "other", "--no-seed", check=True)
    hog_uri, other_uri = (handle.ns_env(n)["MONGODB_URI"] for n in ("hog", "other"))

    def client(uri: str):
        # one pooled connection each, authenticated by the ping (the monitor's own is never authenticated)
        c = pymongo.MongoClient(uri, maxPoolSize=1, serverSelectionTimeoutMS=5000)
        c.get_default_database().command("ping")
        return c

    held = [client(hog_uri) for _ in range(3)]
    others = []
    try:
        for _ in range(2):
            with pytest.raises(OperationFailure, match='too many connections for user "ns_hog" \\(its limit is 3\\)'):
                client(hog_uri)
        others = [client(other_uri) for _ in range(5)]  # the other namespace's whole budget, meanwhile
        for i, c in enumerate(others):
            c.get_default_database().items.insert_one({"i": i})
        assert others[0].get_default_database().items.count_documents({}) == 5
        held.pop().close()
        held.append(client(hog_uri))  # the slot came back
        assert held[-1].get_default_database().items.count_documents({}) == 0
    finally:
        for c in held + others:
            c.close()
