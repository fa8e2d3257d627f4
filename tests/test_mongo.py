"""The mongo service's ferretdb flavor on real FerretDB v1.24.2 (PostgreSQL and SQLite backends), with pymongo and mongosh.

Every isolation claim of the README's mongo rows is asserted here.
"""

import json
import os
import signal
import subprocess
from urllib.parse import urlsplit

import psycopg
import pymongo
import pytest
from pymongo.errors import OperationFailure

from conftest import start_cluster
from localdev.names import Namespace
from localdev.services.mongo.install import mongosh_binary
from localdev.services.mongo import META_DB, MongoError
from localdev.waiting import poll_until


FERRETDB = {"mongo": {"flavor": "ferretdb"}}  # no longer the default: this file is about FerretDB


def client(uri: str) -> pymongo.MongoClient:
    return pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)


def mongosh(uri: str, script: str) -> str:
    proc = subprocess.run([str(mongosh_binary()), uri, "--quiet", "--norc", "--eval", script],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.strip()


def superuser(h, db=META_DB):
    return psycopg.connect(h.cluster.services["postgres"].admin_url(db), autocommit=True)


@pytest.fixture(scope="module")
def mongo_cluster(tmp_path_factory):
    h = start_cluster(tmp_path_factory, ["postgres", "mongo"], FERRETDB)
    yield h
    h.close()


@pytest.fixture(scope="module")
def two(mongo_cluster):
    """Namespaces a and b, with the same collection name holding different documents."""
    ns = mongo_cluster.cluster.namespaces
    ns.create("iso-a")
    ns.create("iso-b")
    uri_a, uri_b = ns.env("iso-a")["MONGODB_URI"], ns.env("iso-b")["MONGODB_URI"]
    a, b = client(uri_a), client(uri_b)
    a.get_default_database().items.insert_many([{"n": i, "owner": "a", "grp": i % 2} for i in range(6)])
    a.get_default_database().items.create_index("n", unique=True)
    b.get_default_database().items.insert_many([{"n": i, "owner": "b"} for i in range(3)])
    yield {"uri_a": uri_a, "uri_b": uri_b, "a": a.get_default_database(), "b_client": b,
           "b": b.get_default_database()}
    a.close()
    b.close()


def test_uri_points_at_the_namespace_database(mongo_cluster, two):
    env = mongo_cluster.ns_env("iso-a")  # the real CLI, as a user gets it
    assert env["MONGODB_URI"] == two["uri_a"]
    assert env["MONGODB_URI"].split("?")[0].endswith("/ns_iso_a")
    assert "authMechanism=PLAIN" in env["MONGODB_URI"]
    assert two["a"].name == "ns_iso_a"


def test_crud_index_aggregate_without_crosstalk(two):
    a, b = two["a"], two["b"]
    assert sorted(d["n"] for d in a.items.find({}, {"_id": 0})) == list(range(6))
    assert {d["owner"] for d in a.items.find()} == {"a"}
    assert {d["owner"] for d in b.items.find()} == {"b"}
    assert b.items.count_documents({}) == 3
    assert "n_1" in [ix["name"] for ix in a.items.list_indexes()]
    assert "n_1" not in [ix["name"] for ix in b.items.list_indexes()]
    with pytest.raises(pymongo.errors.DuplicateKeyError):  # the unique index is real
        a.items.insert_one({"n": 1})
    b.items.insert_one({"n": 1})  # no such index in b
    rows = list(a.items.aggregate([{"$match": {"n": {"$gte": 2}}}, {"$group": {"_id": "$grp", "total": {"$sum": "$n"}}},
                                   {"$sort": {"_id": 1}}]))
    assert rows == [{"_id": 0, "total": 2 + 4}, {"_id": 1, "total": 3 + 5}]
    a.items.update_many({"grp": 0}, {"$set": {"even": True}})
    assert a.items.count_documents({"even": True}) == 3
    assert b.items.count_documents({"even": True}) == 0


def test_mongosh_works_unchanged(two):
    out = mongosh(two["uri_b"], "db.shell.insertOne({via: 'mongosh'}); "
                                "print(db.getName() + ' ' + db.shell.countDocuments({}) + ' ' + db.items.countDocuments({}))")
    assert out.splitlines()[-1] == "ns_iso_b 1 4"
    assert two["b"].shell.find_one({}, {"_id": 0}) == {"via": "mongosh"}
    assert "shell" not in two["a"].list_collection_names()


@pytest.mark.parametrize("what, attempt", [
    ("find", lambda c: c.items.find_one()),
    ("count", lambda c: c.items.count_documents({})),
    ("distinct", lambda c: c.items.distinct("n")),
    ("aggregate", lambda c: list(c.items.aggregate([{"$match": {}}]))),
    ("insert", lambda c: c.items.insert_one({"evil": 1})),
    ("insert into a new collection", lambda c: c.stolen.insert_one({"evil": 1})),
    ("update", lambda c: c.items.update_many({}, {"$set": {"owner": "b"}})),
    ("findAndModify", lambda c: c.items.find_one_and_delete({})),
    ("delete", lambda c: c.items.delete_many({})),
    ("create index", lambda c: c.items.create_index("owner")),
    ("drop index", lambda c: c.items.drop_index("n_1")),
    ("rename collection", lambda c: c.items.rename("moved")),
    ("drop collection", lambda c: c.command("drop", "items")),
    ("drop database", lambda c: c.client.drop_database(c.name)),
    ("collStats", lambda c: c.command("collStats", "items")),
    ("dbStats", lambda c: c.command("dbStats")),
])
def test_other_namespace_credentials_are_refused(two, what, attempt):
    foreign = two["b_client"]["ns_iso_a"]
    with pytest.raises(OperationFailure, match="SQLSTATE 42501"):  # PostgreSQL: insufficient privilege
        attempt(foreign)
    a = two["a"]
    assert a.items.count_documents({}) == 6 and {d["owner"] for d in a.items.find()} == {"a"}
    assert [ix["name"] for ix in a.items.list_indexes()] == ["_id_", "n_1"]
    assert a.list_collection_names() == ["items"]


def test_namespace_cannot_create_other_databases(two):
    for name in ("scratch", "ns_iso_c", "public"):
        with pytest.raises(OperationFailure, match="SQLSTATE 42501"):  # PostgreSQL: insufficient privilege
            two["b_client"][name].things.insert_one({"x": 1})
    assert "scratch" not in two["b_client"].list_database_names()


def test_what_is_not_enforced_names_are_visible(two):
    """The documented gap: collection and index names of other namespaces are served from FerretDB's cache."""
    foreign = two["b_client"]["ns_iso_a"]
    assert foreign.list_collection_names() == ["items"]
    assert [ix["name"] for ix in foreign.items.list_indexes()] == ["_id_", "n_1"]
    # database listings hide what the caller cannot read
    assert two["b_client"].list_database_names() == ["ns_iso_b"]


def test_postgresql_itself_refuses_the_other_role(mongo_cluster, two):
    """The same credentials straight at PostgreSQL: ns_iso_b cannot read ns_iso_a's tables either."""
    pg = mongo_cluster.cluster.services["postgres"]
    env_b = mongo_cluster.cluster.namespaces.env("iso-b")
    with superuser(mongo_cluster) as su:
        table = su.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'ns_iso_a' "
                           "AND tablename LIKE 'items%'").fetchone()[0]
    with psycopg.connect(host=pg.host, port=pg.port, user=env_b["PGUSER"], password=env_b["PGPASSWORD"],
                         dbname=META_DB, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f'SELECT * FROM ns_iso_a."{table}"')
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE SCHEMA mine")


def test_unauthenticated_and_wrong_password_are_refused(mongo_cluster, two):
    svc = mongo_cluster.cluster.services["mongo"]
    anon = pymongo.MongoClient(svc.host, svc.port, serverSelectionTimeoutMS=5000)
    with pytest.raises(OperationFailure):
        anon["ns_iso_a"].items.find_one()
    with pytest.raises(OperationFailure):
        anon.admin.command("ping")
    password = urlsplit(two["uri_a"]).password
    wrong = client(two["uri_a"].replace(f":{password}@", ":not-the-password@"))
    with pytest.raises(OperationFailure):
        wrong.get_default_database().items.find_one()


def test_delete_leaves_nothing_and_the_name_is_reusable(mongo_cluster):
    ns = mongo_cluster.cluster.namespaces
    ns.create("gone")
    uri = ns.env("gone")["MONGODB_URI"]
    with client(uri) as c:
        c.get_default_database().things.insert_many([{"i": i} for i in range(10)])
        c.get_default_database().things.create_index("i")
    assert mongo_cluster.cli("ns", "delete", "gone").returncode == 0
    with superuser(mongo_cluster) as su:
        assert su.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'ns_gone'").fetchone() is None
        assert su.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                          "WHERE n.nspname = 'ns_gone'").fetchone()[0] == 0
        assert su.execute("SELECT 1 FROM pg_roles WHERE rolname = 'ns_gone'").fetchone() is None
        acl = su.execute("SELECT datacl::text FROM pg_database WHERE datname = %s", (META_DB,)).fetchone()[0]
        assert "ns_gone" not in acl
    assert "ns_gone" not in mongo_cluster.cluster.services["mongo"].admin().list_database_names()
    with client(uri) as old:  # the old credentials see nothing and can write nothing
        assert old.get_default_database().things.find_one() is None
        with pytest.raises(OperationFailure):
            old.get_default_database().things.insert_one({"back": True})
    # idempotent
    mongo_cluster.cluster.services["mongo"].drop_namespace(Namespace("gone"))
    ns.create("gone")
    with client(ns.env("gone")["MONGODB_URI"]) as c:
        db = c.get_default_database()
        assert db.list_collection_names() == []
        db.fresh.insert_one({"new": True})
        assert db.fresh.count_documents({}) == 1
    ns.delete("gone")


def test_ferretdb_gaps_users_will_hit(two):
    """Recorded in the README: FerretDB v1.24.2 computes only the first $group accumulator; no $avg."""
    rows = list(two["a"].items.aggregate([{"$group": {"_id": None, "count": {"$sum": 1}, "total": {"$sum": "$n"}}}]))
    assert rows == [{"_id": None, "count": 6, "total": 0}]  # total should be 15
    with pytest.raises(OperationFailure, match=r"\$avg.*not implemented"):
        list(two["a"].items.aggregate([{"$group": {"_id": None, "mean": {"$avg": "$n"}}}]))
    # the workaround: one accumulator per $group stage
    total = list(two["a"].items.aggregate([{"$group": {"_id": None, "total": {"$sum": "$n"}}}]))
    assert total == [{"_id": None, "total": 15}]


def _fresh(h):
    """Forget warm connections of this test process (the CLI restarted the servers under them)."""
    h.cluster.namespaces.close()
    h.cluster.close()


def test_kill9_is_repaired_by_up_and_data_survives_down_up(make_cluster):
    h = make_cluster(services=("postgres", "mongo"), options=FERRETDB, agent=False)
    ns = h.cluster.namespaces
    ns.create("keep")
    ns.create("other")
    uri = ns.env("keep")["MONGODB_URI"]
    with client(uri) as c:
        c.get_default_database().docs.insert_many([{"i": i} for i in range(5)])

    pid = h.cluster.runtime.state("mongo").pid
    os.kill(pid, signal.SIGKILL)
    h.wait_stopped("mongo", 10)
    status = json.loads(h.cli("status", "--json").stdout)
    assert status["services"]["mongo"]["state"] == "dead"
    assert f"pid {pid}" in status["services"]["mongo"]["detail"]
    h.cli("up", check=True)
    assert json.loads(h.cli("status", "--json").stdout)["services"]["mongo"]["state"] == "healthy"
    with client(uri) as c:  # every namespace is known again (localdev's role loaded the metadata first)
        assert c.get_default_database().docs.count_documents({}) == 5
    with client(ns.env("other")["MONGODB_URI"]) as c:
        c.get_default_database().t.insert_one({"after": "restart"})

    h.cli("down", check=True)
    assert json.loads(h.cli("status", "--json").stdout)["services"]["mongo"]["state"] == "stopped"
    with pytest.raises(pymongo.errors.ServerSelectionTimeoutError):
        pymongo.MongoClient(uri, serverSelectionTimeoutMS=500).admin.command("ping")
    h.cli("up", check=True)
    _fresh(h)
    with client(uri) as c:
        assert c.get_default_database().docs.count_documents({}) == 5
    with client(ns.env("other")["MONGODB_URI"]) as c:
        assert c.get_default_database().t.count_documents({"after": "restart"}) == 1
    ns.create("late")  # new namespaces work after a restart too
    with client(ns.env("late")["MONGODB_URI"]) as c:
        c.get_default_database().t.insert_one({"x": 1})
        assert c.get_default_database().t.count_documents({}) == 1


def test_a_tenant_loading_ferretdb_metadata_first_is_detected(make_cluster):
    """FerretDB caches metadata from whoever asks first after a start; a tenant first sees only itself.
    `up` always asks first as localdev's role; if someone beat it, after_ready says so instead of serving
    a broken cluster."""
    h = make_cluster(services=("postgres", "mongo"), options=FERRETDB, agent=False)
    ns = h.cluster.namespaces
    ns.create("first")
    ns.create("second")
    svc = h.cluster.services["mongo"]
    h.cluster.runtime.stop("mongo", h.cluster.spec("mongo"))
    h.cluster.runtime.start("mongo", h.cluster.spec("mongo"))  # started without localdev's first request
    first = client(ns.env("first")["MONGODB_URI"])

    def answers() -> bool:
        try:
            first.get_default_database().command("ping")
            return True
        except pymongo.errors.PyMongoError:
            return False

    poll_until(answers, 20, "FerretDB to answer the first tenant")
    with pytest.raises(OperationFailure):  # the symptom users would see
        client(ns.env("second")["MONGODB_URI"]).get_default_database().t.insert_one({})
    with pytest.raises(MongoError, match="restart"):
        svc.after_ready()
    h.cli("down", check=True)
    h.cli("up", check=True)
    _fresh(h)
    with client(ns.env("second")["MONGODB_URI"]) as c:
        c.get_default_database().t.insert_one({"ok": 1})


def test_seeds_apply_as_the_namespace_and_bad_seeds_change_nothing(make_cluster, tmp_path):
    h = make_cluster(services=("postgres", "mongo"), options=FERRETDB)
    seeds = tmp_path / "seeds" / "mongo"
    seeds.mkdir(parents=True)
    (seeds / "users.json").write_text(json.dumps([{"email": "a@x", "joined": {"$date": "2024-01-02T00:00:00Z"}},
                                                  {"email": "b@x"}]))
    (seeds / "users.indexes.json").write_text(json.dumps([{"key": {"email": 1}, "unique": True}]))
    h.cluster.namespaces.create("seeded", seed=True, seeds_dir=tmp_path / "seeds")
    with client(h.cluster.namespaces.env("seeded")["MONGODB_URI"]) as c:
        users = c.get_default_database().users
        assert users.count_documents({}) == 2
        assert users.find_one({"email": "a@x"})["joined"].year == 2024
        assert "email_1" in [ix["name"] for ix in users.list_indexes()]
    (seeds / "broken.json").write_text('[{"a": 1},\n {"b": ]')
    proc = h.cli("ns", "create", "never", "--seed", "--seeds", str(tmp_path / "seeds"))
    assert proc.returncode == 2
    assert "broken.json:2" in proc.stderr + proc.stdout
    assert "never" not in h.cli("ns", "list").stdout


def test_sqlite_backend(make_cluster):
    h = make_cluster(services=("postgres", "mongo"), options={"mongo": {"flavor": "ferretdb", "backend": "sqlite"}}, agent=False)
    ns = h.cluster.namespaces
    ns.create("lite")
    uri = ns.env("lite")["MONGODB_URI"]
    assert uri.endswith("/ns_lite")
    with client(uri) as c:
        c.get_default_database().t.insert_many([{"i": 1}, {"i": 2}])
        assert c.get_default_database().t.count_documents({}) == 2
    assert list((h.cluster.services["mongo"].data_dir / "sqlite").glob("ns_lite*"))
    ns.delete("lite")
    assert not list((h.cluster.services["mongo"].data_dir / "sqlite").glob("ns_lite*"))


def test_mongodb_flavor_is_refused_natively(tmp_path):
    from conftest import write_config

    project = tmp_path / "p"
    write_config(project, ["postgres", "mongo"], {"mongo": {"flavor": "mongodb"}}, runtime="native")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCALDEV_")}
    env.update({"LOCALDEV_HOME": str(tmp_path / "home"), "LOCALDEV_CONFIG": str(project / "localdev.toml")})
    proc = subprocess.run([os.sys.executable, "-m", "localdev.cli", "up"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=120)
    try:
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert 'flavor = "mongodb" runs only in containers' in proc.stdout + proc.stderr
        assert not (tmp_path / "home" / "run" / "postgres" / "pid").exists()  # nothing was started
        assert not (tmp_path / "home" / "cluster.json").exists()
    finally:
        subprocess.run([os.sys.executable, "-m", "localdev.cli", "down", "--purge"], cwd=project, env=env,
                       capture_output=True, timeout=120)


def test_agent_restarts_a_killed_ferretdb_and_every_namespace_works(make_cluster):
    h = make_cluster(services=("postgres", "mongo"), options=FERRETDB)
    ns = h.cluster.namespaces
    ns.create("one")
    ns.create("two")
    with client(ns.env("one")["MONGODB_URI"]) as c:
        c.get_default_database().d.insert_one({"v": 1})
    pid = h.cluster.runtime.state("mongo").pid
    os.kill(pid, signal.SIGKILL)
    # the agent records the restart once FerretDB answered and localdev's role asked first
    poll_until(lambda: any(e["service"] == "mongo" and e["event"] == "restarted" for e in h.cluster.events()),
               30, "the agent to restart FerretDB")
    assert h.cluster.runtime.state("mongo").pid != pid
    with client(ns.env("one")["MONGODB_URI"]) as c:
        assert c.get_default_database().d.count_documents({}) == 1
    with client(ns.env("two")["MONGODB_URI"]) as c:
        c.get_default_database().d.insert_one({"v": 2})


def test_logs_hold_no_passwords(mongo_cluster, two):
    env = mongo_cluster.cluster.namespaces.env("iso-a")
    with client(two["uri_a"].replace(env["PGPASSWORD"], "a-wrong-password")) as wrong:
        with pytest.raises(OperationFailure):
            wrong.get_default_database().items.find_one()
    log = mongo_cluster.cli("logs", "mongo", "--tail", "100000", check=True).stdout
    assert "Listening on TCP 127.0.0.1:" in log
    secrets = json.loads((mongo_cluster.home / "secrets.json").read_text())
    for value in [env["PGPASSWORD"], "a-wrong-password", *secrets.values()]:
        assert value not in log
