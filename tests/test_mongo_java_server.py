"""The mongo service's mongo-java-server flavor (the default): our launcher's SCRAM users and per-database
authorisation, with pymongo and mongosh, persistence across down/up and kill -9.

Every isolation claim of docs/mongo.md's mongo-java-server row is asserted here.
"""

import json
import os
import signal
import subprocess
import time
from urllib.parse import urlsplit

import pymongo
import pytest
from pymongo.errors import OperationFailure

from conftest import start_cluster
from localdev.names import Namespace
from localdev.services.mongo import install_mjs
from localdev.services.mongo.install import mongosh_binary

MJS = {"mongo": {"flavor": "mongo-java-server"}}


def client(uri: str, **kw) -> pymongo.MongoClient:
    return pymongo.MongoClient(uri, serverSelectionTimeoutMS=10000, **kw)


@pytest.fixture(scope="module")
def mjs_cluster(tmp_path_factory):
    h = start_cluster(tmp_path_factory, ["postgres", "mongo"], MJS)
    yield h
    h.close()


@pytest.fixture(scope="module")
def two(mjs_cluster):
    ns = mjs_cluster.cluster.namespaces
    ns.create("iso-a")
    ns.create("iso-b")
    uri_a, uri_b = ns.env("iso-a")["MONGODB_URI"], ns.env("iso-b")["MONGODB_URI"]
    a, b = client(uri_a), client(uri_b)
    a.get_default_database().items.insert_many([{"n": i, "owner": "a"} for i in range(6)])
    a.get_default_database().items.create_index("n", unique=True)
    b.get_default_database().items.insert_many([{"n": i, "owner": "b"} for i in range(3)])
    yield {"uri_a": uri_a, "uri_b": uri_b, "a": a.get_default_database(), "b_client": b,
           "b": b.get_default_database()}
    a.close()
    b.close()


def test_uri_uses_the_drivers_default_mechanism(mjs_cluster, two):
    env = mjs_cluster.ns_env("iso-a")  # the real CLI
    assert env["MONGODB_URI"] == two["uri_a"]
    parts = urlsplit(env["MONGODB_URI"])
    assert parts.path == "/ns_iso_a" and parts.query == "" and parts.username == "ns_iso_a"
    status = two["a"].command("connectionStatus")["authInfo"]
    assert status["authenticatedUsers"] == [{"user": "ns_iso_a", "db": "ns_iso_a"}]


def test_mongosh_works_unchanged(two):
    proc = subprocess.run([str(mongosh_binary()), two["uri_b"], "--quiet", "--norc", "--eval",
                           "db.shell.insertOne({via: 'mongosh'}); "
                           "print(db.getName() + ' ' + db.shell.countDocuments({}) + ' ' + db.items.countDocuments({}))"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "ns_iso_b 1 3"
    assert "shell" not in two["a"].list_collection_names()


ATTEMPTS = [
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
    ("list indexes", lambda c: list(c.items.list_indexes())),
    ("list collections", lambda c: c.list_collection_names()),
    ("rename collection", lambda c: c.items.rename("moved")),
    ("drop collection", lambda c: c.drop_collection("items")),
    ("drop database", lambda c: c.client.drop_database(c.name)),
    ("collStats", lambda c: c.command("collStats", "items")),
    ("dbStats", lambda c: c.command("dbStats")),
]


def _intact(a):
    assert a.items.count_documents({}) == 6 and {d["owner"] for d in a.items.find()} == {"a"}
    assert sorted(ix["name"] for ix in a.items.list_indexes()) == ["_id_", "n_1"]
    assert a.list_collection_names() == ["items"]


@pytest.mark.parametrize("what, attempt", ATTEMPTS, ids=[w for w, _ in ATTEMPTS])
def test_other_namespace_credentials_are_refused(two, what, attempt):
    with pytest.raises(OperationFailure) as info:
        attempt(two["b_client"]["ns_iso_a"])
    assert info.value.code == 13  # Unauthorized, as MongoDB answers
    _intact(two["a"])


def test_listings_and_pipelines_stay_in_your_database(two):
    b = two["b_client"]
    assert b.list_database_names() == ["ns_iso_b"]
    for stage in ({"$out": {"db": "ns_iso_a", "coll": "x"}}, {"$merge": {"into": {"db": "ns_iso_a", "coll": "x"}}}):
        with pytest.raises(OperationFailure) as info:
            list(two["b"].items.aggregate([stage]))
        assert info.value.code == 13
    for name in ("admin", "local", "config", "scratch"):
        with pytest.raises(OperationFailure):
            b[name].things.insert_one({"x": 1})
    with pytest.raises(OperationFailure):
        b.admin.command("serverStatus")
    with pytest.raises(OperationFailure):
        b.admin.command("renameCollection", "ns_iso_a.items", to="ns_iso_b.mine")
    _intact(two["a"])


def test_another_users_cursor_cannot_be_read(two):
    cursor = two["a"].items.find({}, batch_size=2)
    next(cursor)
    cursor_id = cursor.cursor_id
    assert cursor_id
    with pytest.raises(OperationFailure) as info:
        two["b"].command("getMore", cursor_id, collection="items")
    assert info.value.code == 43
    with pytest.raises(OperationFailure):
        two["b"].command("killCursors", "items", cursors=[cursor_id])
    assert len(list(cursor)) == 5  # its owner still reads it to the end


def test_unauthenticated_and_wrong_password_get_nothing(mjs_cluster, two):
    svc = mjs_cluster.cluster.services["mongo"]
    with pymongo.MongoClient(svc.host, svc.port, serverSelectionTimeoutMS=5000) as anon:
        anon.admin.command("ping")  # as MongoDB: the handshake and ping need no login
        for attempt in (lambda: anon["ns_iso_a"].items.find_one(), lambda: anon.list_database_names(),
                        lambda: anon["ns_iso_a"].items.insert_one({"x": 1})):
            with pytest.raises(OperationFailure) as info:
                attempt()
            assert info.value.code == 13
    password = urlsplit(two["uri_a"]).password
    for mech in ("SCRAM-SHA-256", "SCRAM-SHA-1"):
        with client(two["uri_a"].replace(f":{password}@", ":not-the-password@"), authMechanism=mech) as wrong:
            with pytest.raises(OperationFailure) as info:
                wrong.get_default_database().items.find_one()
            assert info.value.code == 18  # AuthenticationFailed
    with client(two["uri_a"].replace("ns_iso_a:", "nobody:", 1)) as unknown:
        with pytest.raises(OperationFailure) as info:
            unknown.get_default_database().items.find_one()
        assert info.value.code == 18
    # a namespace's user exists in its own database only
    with client(two["uri_a"].replace("/ns_iso_a", "/admin")) as elsewhere:
        with pytest.raises(OperationFailure):
            elsewhere.ns_iso_a.items.find_one()
    _intact(two["a"])


def test_transactions_are_refused_before_they_write(two):
    db = two["a"]
    with db.client.start_session() as s:
        with pytest.raises(OperationFailure) as info:
            s.start_transaction()
            db.items.insert_one({"in": "txn"}, session=s)
        assert info.value.code == 20
    assert db.items.count_documents({"in": "txn"}) == 0


def test_delete_removes_the_user_and_its_data(mjs_cluster):
    ns = mjs_cluster.cluster.namespaces
    ns.create("gone")
    uri = ns.env("gone")["MONGODB_URI"]
    old = client(uri)
    old.get_default_database().things.insert_many([{"i": i} for i in range(10)])
    assert mjs_cluster.cli("ns", "delete", "gone").returncode == 0
    admin = mjs_cluster.cluster.services["mongo"].admin()
    assert "ns_gone" not in admin.list_database_names()
    assert admin["ns_gone"].command("usersInfo")["users"] == []
    with pytest.raises(OperationFailure) as info:  # a connection that logged in before is cut off too
        old.get_default_database().things.find_one()
    assert info.value.code == 13
    old.close()
    with client(uri) as again:
        with pytest.raises(OperationFailure):
            again.get_default_database().things.find_one()
    mjs_cluster.cluster.services["mongo"].drop_namespace(Namespace("gone"))  # idempotent
    ns.create("gone")
    with client(ns.env("gone")["MONGODB_URI"]) as c:
        assert c.get_default_database().list_collection_names() == []
    ns.delete("gone")


def test_deleting_a_namespace_spares_those_whose_names_begin_with_its_own(mjs_cluster):
    """Upstream's dropDatabase removed the storage of every database whose name starts with the dropped one's:
    deleting pfx-1 emptied pfx-10, whose own delete then failed ("Expected [indexes] to be empty")."""
    ns = mjs_cluster.cluster.namespaces
    names = ["pfx-1", "pfx-10", "pfx-1-b"]
    for name in names:
        ns.create(name)
        with client(ns.env(name)["MONGODB_URI"]) as c:
            c.get_default_database().docs.insert_many([{"i": i, "of": name} for i in range(5)])
            c.get_default_database().docs.create_index("i", unique=True, name="by_i")
    assert mjs_cluster.cli("ns", "delete", "pfx-1").returncode == 0
    admin = mjs_cluster.cluster.services["mongo"].admin()
    assert sorted(n for n in admin.list_database_names() if n.startswith("ns_pfx_")) == ["ns_pfx_10", "ns_pfx_1_b"]
    for name in names[1:]:
        with client(ns.env(name)["MONGODB_URI"]) as c:
            db = c.get_default_database()
            assert sorted((d["i"], d["of"]) for d in db.docs.find()) == [(i, name) for i in range(5)]
            assert sorted(ix["name"] for ix in db.docs.list_indexes()) == ["_id_", "by_i"]
            with pytest.raises(pymongo.errors.DuplicateKeyError):
                db.docs.insert_one({"i": 3})
    for name in names[1:]:
        proc = mjs_cluster.cli("ns", "delete", name)
        assert proc.returncode == 0, proc.stderr
    assert [n for n in admin.list_database_names() if n.startswith("ns_pfx_")] == []


def test_launcher_binds_loopback_and_runs_bounded(mjs_cluster):
    pid = mjs_cluster.cluster.runtime.state("mongo").pid
    argv = open(f"/proc/{pid}/cmdline").read().split("\0")
    assert "-Xmx256m" in argv and "--host" in argv and argv[argv.index("--host") + 1] == "127.0.0.1"
    assert mjs_cluster.cluster.state.secret("mongo_root_password") not in "".join(argv)
    home = str(mjs_cluster.home)
    assert argv[argv.index("--data") + 1].startswith(home)
    listen = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    mine = [line for line in listen.splitlines() if f"pid={pid}," in line]
    assert mine and all("127.0.0.1:" in line.split()[3] for line in mine)


def test_server_maps_its_class_archive_and_runs_without_one_when_asked(mjs_cluster, make_cluster):
    """The class archive recorded at provisioning is what the server starts from (mapped, not refused with a
    warning); `cds = false` starts it from the jars alone."""
    pid = mjs_cluster.cluster.runtime.state("mongo").pid
    archive = install_mjs.provision().cds_archive
    assert archive is not None and archive.name == "classes.jsa"
    assert str(archive) in open(f"/proc/{pid}/maps").read()
    assert "[cds]" not in (mjs_cluster.home / "logs" / "mongo.log").read_text()
    h = make_cluster(services=("mongo",), options={"mongo": {"flavor": "mongo-java-server", "cds": False}},
                     agent=False)
    plain = h.cluster.runtime.state("mongo").pid
    assert str(archive) not in open(f"/proc/{plain}/maps").read()
    assert not any(a.startswith("-XX:SharedArchiveFile") for a in open(f"/proc/{plain}/cmdline").read().split("\0"))
    assert h.cluster.services["mongo"].ready()


def test_data_and_users_survive_kill9_and_down_up(make_cluster):
    h = make_cluster(services=("postgres", "mongo"), options=MJS, agent=False)
    ns = h.cluster.namespaces
    ns.create("keep")
    ns.create("kee")  # its database's name begins keep's: its delete must not reach keep's storage
    uri = ns.env("keep")["MONGODB_URI"]
    with client(ns.env("kee")["MONGODB_URI"]) as c:
        c.get_default_database().docs.insert_one({"i": 0})
    with client(uri) as c:
        db = c.get_default_database()
        db.docs.insert_many([{"i": i} for i in range(5)])
        db.docs.create_index("i", unique=True)
        ns.delete("kee")
        db.docs.insert_one({"i": 99})  # acknowledged just before the kill
    pid = h.cluster.runtime.state("mongo").pid
    os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 10
    while time.time() < deadline and h.cluster.runtime.state("mongo").running:
        time.sleep(0.05)
    assert json.loads(h.cli("status", "--json").stdout)["services"]["mongo"]["state"] == "dead"
    h.cli("up", check=True)
    h.cluster.namespaces.close()
    h.cluster.close()
    with client(uri) as c:
        db = c.get_default_database()
        assert db.docs.count_documents({}) == 6
        with pytest.raises(pymongo.errors.DuplicateKeyError):
            db.docs.insert_one({"i": 3})
    h.cli("down", check=True)
    h.cli("up", check=True)
    h.cluster.namespaces.close()
    h.cluster.close()
    with client(uri) as c:
        assert c.get_default_database().docs.count_documents({}) == 6
    with client(uri.replace(f":{urlsplit(uri).password}@", ":wrong@")) as c:
        with pytest.raises(OperationFailure):
            c.get_default_database().docs.find_one()


def test_the_users_log_survives_kill9_and_a_line_cut_short(make_cluster):
    """Users are appended to their file, drops too; a restart reads the log, drops a last line cut short (an
    OS crash mid-append: that command was never answered) and compacts the file."""
    h = make_cluster(services=("postgres", "mongo"), options=MJS, agent=False)
    ns = h.cluster.namespaces
    for name in ("la", "lb", "lc"):
        ns.create(name)
    envs = {name: ns.env(name)["MONGODB_URI"] for name in ("la", "lb", "lc")}
    ns.delete("lb")
    argv = open(f"/proc/{h.cluster.runtime.state('mongo').pid}/cmdline").read().split("\0")
    users = argv[argv.index("--users") + 1]
    logged = open(users).read().splitlines()
    assert len(logged) > 2 and logged[-1].split("\t") == ["ns_lb", "ns_lb"]  # appended, not rewritten

    def restart() -> None:
        pid = h.cluster.runtime.state("mongo").pid
        os.kill(pid, signal.SIGKILL)
        deadline = time.time() + 10
        while time.time() < deadline and h.cluster.runtime.state("mongo").running:
            time.sleep(0.05)
        h.cli("up", check=True)
        h.cluster.namespaces.close()
        h.cluster.close()

    def works(uri: str) -> bool:
        with client(uri) as c:
            try:
                c.get_default_database().docs.insert_one({"ok": 1})
                return True
            except OperationFailure:
                return False

    restart()
    assert [works(envs[n]) for n in ("la", "lb", "lc")] == [True, False, True]
    with open(users, "a") as f:
        f.write("ns_la\tns_la\tSCRAM-SHA-1\tAAAA")  # a torn append: no end of line
    restart()
    assert [works(envs[n]) for n in ("la", "lb", "lc")] == [True, False, True]
    lines = open(users).read()
    assert lines.endswith("\n") and sorted(line.split("\t")[0] for line in lines.splitlines()) == ["ns_la", "ns_lc"]
    ns.create("ld")
    restart()
    assert works(ns.env("ld")["MONGODB_URI"]) and works(envs["la"])


def test_logs_hold_no_passwords(mjs_cluster, two):
    logs = "".join(p.read_text(errors="replace") for p in (mjs_cluster.home / "logs").glob("*"))
    for uri in (two["uri_a"], two["uri_b"]):
        assert urlsplit(uri).password not in logs
    assert mjs_cluster.cluster.state.secret("mongo_root_password") not in logs


def _contents(db) -> dict:
    """Every collection's documents (in _id order) and indexes, the index's namespace left out."""
    out = {}
    for name in sorted(db.list_collection_names()):
        indexes = sorted(({k: v for k, v in ix.items() if k != "ns"} for ix in db[name].list_indexes()),
                         key=lambda ix: ix["name"])
        out[name] = {"docs": list(db[name].find({}, sort=[("_id", 1)])), "indexes": indexes}
    return out


def _fill_varied(db) -> None:
    from bson import ObjectId

    db.people.insert_many([{"_id": ObjectId(), "email": f"p{i}@x", "city": ["oslo", "rome"][i % 2], "age": 20 + i,
                            "address": {"street": f"s{i}", "geo": {"lat": i / 3, "tags": ["a", {"deep": i}]}}}
                           for i in range(40)])
    db.people.create_index("email", unique=True, name="email_unique")
    db.people.create_index([("city", 1), ("age", -1)], name="city_age")
    db.counters.insert_many([{"_id": i, "value": i * i} for i in range(25)])
    db.tags.insert_many([{"_id": f"tag-{i}", "label": {"en": f"T{i}", "n": i}} for i in range(15)])
    db.tags.create_index([("label.n", 1), ("label.en", 1)], unique=True, name="label_unique")


def test_storage_copy_of_a_namespace_is_exact_independent_enforced_and_durable(make_cluster):
    h = make_cluster(services=("postgres", "mongo"), options=MJS)
    ns = h.cluster.namespaces
    ns.create("cp-src")
    src_uri = ns.env("cp-src")["MONGODB_URI"]
    with client(src_uri) as c:
        _fill_varied(c.get_default_database())
        want = _contents(c.get_default_database())
    assert set(want) == {"people", "counters", "tags"}
    assert [ix["name"] for ix in want["people"]["indexes"]] == ["_id_", "city_age", "email_unique"]

    h.cli("ns", "create", "cp-new", "--from", "cp-src", check=True)  # a branch: a snapshot taken and copied
    new_uri = ns.env("cp-new")["MONGODB_URI"]
    with client(new_uri) as c, client(src_uri) as s:
        new, src = c.get_default_database(), s.get_default_database()
        assert _contents(new) == want
        for coll, dup in (("people", {"email": "p3@x"}), ("tags", {"label": {"en": "T4", "n": 4}}),
                          ("counters", {"_id": 7})):
            with pytest.raises(pymongo.errors.DuplicateKeyError):
                new[coll].insert_one(dup)
        new.people.insert_one({"email": "only-in-copy@x"})
        new.counters.delete_one({"_id": 0})
        src.tags.insert_one({"_id": "only-in-source", "label": {"en": "S", "n": 99}})
        assert src.people.count_documents({"email": "only-in-copy@x"}) == 0
        assert src.counters.count_documents({"_id": 0}) == 1
        assert new.tags.count_documents({"_id": "only-in-source"}) == 0
        new.tags.insert_one({"_id": "only-in-source", "label": {"en": "S", "n": 99}})  # its own index: no clash
        copy_state = _contents(new)

        # only localdev's root user may copy a database, and only into a new one from an existing one
        for target in ("admin", "ns_cp_new"):
            with pytest.raises(OperationFailure) as info:
                new.client[target].command("localdevCopyDatabase", **{"from": "ns_cp_new", "to": "ns_stolen"})
            assert info.value.code == 13
        admin = h.cluster.services["mongo"].admin()
        for source, target, code in (("ns_cp_src", "ns_cp_new", 48), ("ns_nothing", "ns_other", 26),
                                     ("ns_cp_src", "ns_cp_src", 2), ("admin", "ns_x", 2)):
            with pytest.raises(OperationFailure) as info:
                admin.admin.command("localdevCopyDatabase", **{"from": source, "to": target})
            assert info.value.code == code
        assert _contents(new) == copy_state
        assert "ns_stolen" not in admin.list_database_names()

    # the copy is committed: it survives a kill -9 of the server (the agent starts it again)
    pid = h.cluster.runtime.state("mongo").pid
    os.kill(pid, signal.SIGKILL)
    h.wait_restarted("mongo", pid, 90)
    h.cluster.close()
    with client(new_uri) as c:
        new = c.get_default_database()
        assert _contents(new) == copy_state
        with pytest.raises(pymongo.errors.DuplicateKeyError):
            new.people.insert_one({"email": "p5@x"})

    # reset to a snapshot of the source gives the source's state back, unique indexes enforced
    h.cli("ns", "snapshot", "cp-src", "--as", "cp-snap", check=True)
    h.cli("ns", "reset", "cp-new", "--to", "cp-snap", check=True)
    with client(new_uri) as c, client(src_uri) as s:
        assert _contents(c.get_default_database()) == _contents(s.get_default_database())
        with pytest.raises(pymongo.errors.DuplicateKeyError):
            c.get_default_database().people.insert_one({"email": "p1@x"})


def test_storage_copy_sees_whole_writes_of_a_concurrent_writer(mjs_cluster):
    import threading

    ns = mjs_cluster.cluster.namespaces
    ns.create("cp-busy")
    admin = mjs_cluster.cluster.services["mongo"].admin()
    with client(ns.env("cp-busy")["MONGODB_URI"]) as c:
        db = c.get_default_database()
        db.log.create_index("n", unique=True)
        db.log.insert_many([{"n": i, "pad": "x" * 200} for i in range(3000)])
        stop, written = threading.Event(), []

        def writer():
            n = 3000
            while not stop.is_set():
                db.log.insert_many([{"n": n + k, "pad": "y"} for k in range(50)])
                n += 50
                written.append(n)

        t = threading.Thread(target=writer)
        t.start()
        try:
            while len(written) < 3:
                time.sleep(0.01)
            copies = [f"cp_busy_copy_{i}" for i in range(3)]
            for name in copies:
                admin.admin.command("localdevCopyDatabase", **{"from": "ns_cp_busy", "to": name})
        finally:
            stop.set()
            t.join()
        for name in copies:
            got = sorted(d["n"] for d in admin[name].log.find({}, {"n": 1}))
            # whole batches only, and in order: every insert acknowledged before the copy, none after
            assert got == list(range(len(got))) and len(got) % 50 == 0 and len(got) >= 3000
            assert admin[name].log.count_documents({}) == len(got)
            with pytest.raises(pymongo.errors.DuplicateKeyError):
                admin[name].log.insert_one({"n": 0})
            admin.drop_database(name)
    ns.delete("cp-busy")
