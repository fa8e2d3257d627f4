"""Snapshots inside the cluster: `ns create --from`, `ns snapshot`, `ns reset`, seeded creates that copy.

Real services (the session's full cluster: every service, MiniStack for aws), driven by real clients."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import psycopg
import pymongo
import pytest
import redis
from botocore.exceptions import ClientError

from localdev.waiting import poll_until

SEEDS = str(Path(__file__).parent.parent / "seeds")


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """A cluster of this file's own: snapshots are cluster-wide state, and other files kill -9 the session's
    shared services (MiniStack forgets every snapshot copy it held when it restarts, and a reset then says so)."""
    from conftest import ALL_SERVICES, start_cluster

    handle = start_cluster(tmp_path_factory, ALL_SERVICES, {"aws": {"flavor": "ministack"}},
                           extra="[agent]\nreap_interval = 3600\n")
    yield handle
    handle.close()


def _session(env):
    return boto3.session.Session(aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                 aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_REGION"])


def state(env: dict) -> dict:
    """Everything a namespace holds, service by service, read with its own credentials; names that carry the
    namespace's own name (buckets, Redis keys) are given without it, so two namespaces compare equal."""
    ns = env["LOCALDEV_NAMESPACE"]
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        tables = [r[0] for r in conn.execute("select tablename from pg_tables where schemaname = 'public' "
                                             "order by 1").fetchall()]
        pg = {t: conn.execute(f"select * from {t} order by 1").fetchall() for t in tables}
        owners = {r[0] for r in conn.execute("select tableowner from pg_tables where schemaname = 'public'")}
    session = _session(env)
    ddb = session.client("dynamodb", endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"])
    dynamo = {}
    for table in ddb.list_tables()["TableNames"]:
        desc = ddb.describe_table(TableName=table)["Table"]
        items = sorted(ddb.scan(TableName=table)["Items"], key=lambda i: json.dumps(i, sort_keys=True))
        dynamo[table] = {"items": items, "keys": desc["KeySchema"],
                         "indexes": sorted(i["IndexName"] for i in desc.get("GlobalSecondaryIndexes", []))}
    s3 = session.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
    objects = {}
    for bucket in sorted(b["Name"] for b in s3.list_buckets()["Buckets"]):
        assert bucket.startswith(ns + "-")
        objects[bucket[len(ns) + 1:]] = {
            o["Key"]: (s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read(),
                       s3.head_object(Bucket=bucket, Key=o["Key"])["ContentType"])
            for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    sqs = session.client("sqs", endpoint_url=env["AWS_ENDPOINT_URL"])
    queues = {}
    for url in sqs.list_queues().get("QueueUrls", []):
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        queues[url.rsplit("/", 1)[1]] = {k: attrs.get(k) for k in ("VisibilityTimeout", "FifoQueue",
                                                                     "MessageRetentionPeriod")}
    with pymongo.MongoClient(env["MONGODB_URI"]) as client:
        db = client.get_default_database()
        mongo = {c: {"docs": list(db[c].find({}, sort=[("_id", 1)])),
                     "indexes": sorted((i["name"], bool(i.get("unique"))) for i in db[c].list_indexes())}
                 for c in sorted(db.list_collection_names())}
    prefix = env["REDIS_KEY_PREFIX"]
    with redis.Redis.from_url(env["REDIS_URL"]) as r:
        keys = {k.decode()[len(prefix):]: (r.type(k), r.dump(k), r.ttl(k) > 0)
                for k in r.scan_iter(match=prefix + "*")}
    return {"pg": pg, "pg_owners": owners, "dynamodb": dynamo, "s3": objects, "sqs": queues, "mongo": mongo,
            "redis": keys}


def write_everywhere(env: dict, tag: str) -> None:
    """One write per service, as a user's code makes it."""
    ns = env["LOCALDEV_NAMESPACE"]
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        conn.execute("create table if not exists notes (id text primary key, body text)")
        conn.execute("insert into notes values (%s, %s)", (tag, f"{tag} body"))
    session = _session(env)
    ddb = session.client("dynamodb", endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"])
    ddb.put_item(TableName="carts", Item={"customer_id": {"N": "99"}, "sku": {"S": tag}, "qty": {"N": "1"}})
    s3 = session.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
    s3.put_object(Bucket=f"{ns}-assets", Key=f"{tag}.json", Body=b'{"tag": 1}', ContentType="application/json")
    sqs = session.client("sqs", endpoint_url=env["AWS_ENDPOINT_URL"])
    sqs.create_queue(QueueName=f"q-{tag}", Attributes={"VisibilityTimeout": "7"})
    with pymongo.MongoClient(env["MONGODB_URI"]) as client:
        client.get_default_database().notes.insert_one({"_id": tag, "n": 1})
    with redis.Redis.from_url(env["REDIS_URL"]) as r:
        r.set(env["REDIS_KEY_PREFIX"] + tag, "v-" + tag)


def without(st: dict, tag: str) -> dict:
    """`st` minus what write_everywhere(tag) adds (to compare a namespace written to with one that was not)."""
    out = json.loads(json.dumps(st, default=repr))
    out["pg"]["notes"] = [r for r in out["pg"].get("notes", []) if r[0] != tag]
    if not out["pg"]["notes"]:
        out["pg"].pop("notes")
    out["dynamodb"]["carts"]["items"] = [i for i in out["dynamodb"]["carts"]["items"] if i["sku"]["S"] != tag]
    out["s3"]["assets"].pop(f"{tag}.json", None)
    out["sqs"].pop(f"q-{tag}", None)
    if "notes" in out["mongo"]:
        out["mongo"]["notes"]["docs"] = [d for d in out["mongo"]["notes"]["docs"] if d["_id"] != tag]
        if not out["mongo"]["notes"]["docs"]:
            out["mongo"].pop("notes")
    out["redis"].pop(tag, None)
    return out


def plain(st: dict) -> dict:
    return json.loads(json.dumps(st, default=repr))


def assert_same(got: dict, want: dict) -> None:
    """Equal state, service by service (a failure names the services that differ and shows them)."""
    got, want = plain(got), plain(want)
    differ = {k: (got.get(k), want.get(k)) for k in set(got) | set(want) if got.get(k) != want.get(k)}
    assert not differ, differ


def test_branch_of_a_live_namespace_is_a_copy_and_independent(full):
    full.cli("ns", "create", "br-src", "--seeds", SEEDS, check=True)
    src_env = full.ns_env("br-src")
    write_everywhere(src_env, "before")
    src_before = state(src_env)
    assert src_before["pg"]["notes"] == [("before", "before body")]
    assert src_before["s3"]["assets"]["before.json"] == (b'{"tag": 1}', "application/json")

    full.cli("ns", "create", "br-new", "--from", "br-src", check=True)
    with psycopg.connect(full.cluster.services["postgres"].admin_url("localdev")) as conn:  # the gateway's ownership
        owners = dict(conn.execute("select bucket, namespace from aws_buckets where bucket like 'br-%'").fetchall())
    assert owners == {"br-src-assets": "br-src", "br-src-invoices": "br-src",
                      "br-new-assets": "br-new", "br-new-invoices": "br-new"}
    new_env = full.ns_env("br-new")
    assert new_env["PGPASSWORD"] != src_env["PGPASSWORD"]
    assert new_env["AWS_ACCESS_KEY_ID"] != src_env["AWS_ACCESS_KEY_ID"]
    copy = state(new_env)
    assert copy["pg_owners"] == {"ns_br_new"}  # the copy's objects are its own role's
    assert_same(copy, {**src_before, "pg_owners": {"ns_br_new"}})

    # writes on either side stay there
    write_everywhere(new_env, "branch")
    write_everywhere(src_env, "source")
    src_after, new_after = state(src_env), state(new_env)
    assert without(src_after, "source") == plain(src_before)
    assert without(new_after, "branch") == plain(copy)
    assert ("branch", "branch body") not in src_after["pg"]["notes"]
    assert ("source", "source body") not in new_after["pg"]["notes"]

    # the branch's credentials reach nothing of the source's
    src_url = src_env["DATABASE_URL"].replace(src_env["PGUSER"], new_env["PGUSER"], 1).replace(
        src_env["PGPASSWORD"], new_env["PGPASSWORD"])
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(src_url).close()
    with pymongo.MongoClient(new_env["MONGODB_URI"]) as client:
        with pytest.raises(pymongo.errors.OperationFailure):
            client["ns_br_src"].reviews.find_one()
    with redis.Redis.from_url(new_env["REDIS_URL"]) as r:
        with pytest.raises(redis.exceptions.NoPermissionError):
            r.get(src_env["REDIS_KEY_PREFIX"] + "before")
    s3 = _session(new_env).client("s3", endpoint_url=new_env["AWS_ENDPOINT_URL"])
    with pytest.raises(ClientError):
        s3.get_object(Bucket="br-src-assets", Key="before.json")
    for name in ("br-new", "br-src"):
        full.cli("ns", "delete", name, check=True)


def test_snapshot_create_from_it_reset_to_it_and_delete_it(full):
    full.cli("ns", "create", "sn-src", "--seeds", SEEDS, check=True)
    src_env = full.ns_env("sn-src")
    write_everywhere(src_env, "kept")
    taken = state(src_env)
    full.cli("ns", "snapshot", "sn-src", "--as", "sn-one", check=True)
    listed = json.loads(full.cli("ns", "snapshots", "--json", check=True).stdout)
    assert [(s["name"], s["source"]) for s in listed if s["name"] == "sn-one"] == [("sn-one", "sn-src")]
    write_everywhere(src_env, "later")  # after the snapshot: not in it

    # a key with a TTL is kept by the snapshot with the time it had left, however long the snapshot lives
    with redis.Redis.from_url(src_env["REDIS_URL"]) as r:
        r.set(src_env["REDIS_KEY_PREFIX"] + "short", "s", px=6000)
        full.cli("ns", "snapshot", "sn-src", "--as", "sn-ttl", check=True)
        poll_until(lambda: not r.exists(src_env["REDIS_KEY_PREFIX"] + "short"), 30, "the key to expire")
    full.cli("ns", "create", "sn-ttl-copy", "--from", "sn-ttl", check=True)
    ttl_env = full.ns_env("sn-ttl-copy")
    with redis.Redis.from_url(ttl_env["REDIS_URL"]) as r:
        assert r.get(ttl_env["REDIS_KEY_PREFIX"] + "short") == b"s"
        assert 0 < r.pttl(ttl_env["REDIS_KEY_PREFIX"] + "short") <= 6000
    full.cli("ns", "delete", "sn-ttl-copy", check=True)
    full.cli("ns", "snapshot", "--delete", "sn-ttl", check=True)

    full.cli("ns", "create", "sn-copy", "--from", "sn-one", check=True)
    copy_env = full.ns_env("sn-copy")
    assert_same({**state(copy_env), "pg_owners": None}, {**taken, "pg_owners": None})

    # reset to the snapshot: the snapshot's state, same credentials
    full.cli("ns", "reset", "sn-src", "--to", "sn-one", check=True)
    assert_same(state(src_env), taken)

    # the snapshot is its own copy: writes to a namespace made from it do not change it
    write_everywhere(copy_env, "copy")
    full.cli("ns", "create", "sn-copy2", "--from", "sn-one", check=True)
    assert_same({**state(full.ns_env("sn-copy2")), "pg_owners": None}, {**taken, "pg_owners": None})

    snap_id = _snapshot_ids(full)["sn-one"]
    full.cli("ns", "snapshot", "--delete", "sn-one", check=True)
    assert "sn-one" not in _snapshot_ids(full)
    assert _pg_snapshot_dbs(full) & {f"localdev_snap_{snap_id}"} == set()
    assert not (full.home / "data" / "dynamodb" / "snapshots" / snap_id).exists()
    for name in ("sn-copy", "sn-copy2", "sn-src"):
        full.cli("ns", "delete", name, check=True)


def test_reset_gives_back_the_seeded_state_with_the_same_credentials(full):
    full.cli("ns", "create", "rs-a", "--seeds", SEEDS, check=True)
    env = full.ns_env("rs-a")
    seeded = state(env)
    assert len(seeded["pg"]["customers"]) == 3 and len(seeded["dynamodb"]["carts"]["items"]) == 4
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("delete from order_lines")
        conn.execute("drop view order_totals")
    write_everywhere(env, "dirt")
    with pymongo.MongoClient(env["MONGODB_URI"]) as client:
        client.get_default_database().reviews.delete_many({})
    assert plain(state(env)) != plain(seeded)
    proc = full.cli("ns", "reset", "rs-a", check=True)
    assert "credentials are unchanged" in proc.stdout
    assert full.ns_env("rs-a") == env
    assert_same(state(env), seeded)

    # a second namespace of the same seeds was copied from the seed snapshot, and equals the first
    full.cli("ns", "create", "rs-b", "--seeds", SEEDS, check=True)
    assert_same({**state(full.ns_env("rs-b")), "pg_owners": None}, {**seeded, "pg_owners": None})

    # an unseeded namespace resets to empty
    full.cli("ns", "create", "rs-empty", "--no-seed", check=True)
    empty_env = full.ns_env("rs-empty")
    write_everywhere_empty(empty_env)
    full.cli("ns", "reset", "rs-empty", check=True)
    st = state(empty_env)
    assert (st["pg"], st["dynamodb"], st["s3"], st["sqs"], st["mongo"], st["redis"]) == ({}, {}, {}, {}, {}, {})
    for name in ("rs-a", "rs-b", "rs-empty"):
        full.cli("ns", "delete", name, check=True)


def write_everywhere_empty(env: dict) -> None:
    ns = env["LOCALDEV_NAMESPACE"]
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        conn.execute("create table t (v int)")
    session = _session(env)
    session.client("dynamodb", endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"]).create_table(
        TableName="things", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    session.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"]).create_bucket(Bucket=f"{ns}-x")
    session.client("sqs", endpoint_url=env["AWS_ENDPOINT_URL"]).create_queue(QueueName="q")
    with pymongo.MongoClient(env["MONGODB_URI"]) as client:
        client.get_default_database().c.insert_one({"a": 1})
    with redis.Redis.from_url(env["REDIS_URL"]) as r:
        r.set(env["REDIS_KEY_PREFIX"] + "k", "v")


def test_from_a_live_postgres_namespace_keeps_its_open_session(full):
    full.cli("ns", "create", "live-src", "--no-seed", check=True)
    env = full.ns_env("live-src")
    session = psycopg.connect(env["DATABASE_URL"])
    session.execute("create table t (v int)")
    session.execute("insert into t values (1)")
    session.commit()
    session.execute("insert into t values (2)")  # a transaction left open across the copy
    full.cli("ns", "create", "live-copy", "--from", "live-src", check=True)
    session.execute("insert into t values (3)")
    session.commit()
    assert session.execute("select v from t order by v").fetchall() == [(1,), (2,), (3,)]
    session.close()
    with psycopg.connect(full.ns_env("live-copy")["DATABASE_URL"]) as conn:
        assert conn.execute("select v from t").fetchall() == [(1,)]  # committed when the copy was taken
    for name in ("live-copy", "live-src"):
        full.cli("ns", "delete", name, check=True)


def test_bad_input_exits_2_and_makes_nothing(full):
    full.cli("ns", "create", "bad-src", "--no-seed", check=True)
    full.cli("ns", "snapshot", "bad-src", "--as", "bad-snap", check=True)
    before_ns = _names(full)
    before_snaps = _snapshot_ids(full)
    cases = [
        (("ns", "create", "bad-new", "--from", "no-such-thing"), "no namespace or snapshot"),
        (("ns", "create", "bad-src", "--from", "bad-snap"), "already exists"),
        (("ns", "snapshot", "bad-src", "--as", "bad-snap"), "is taken"),
        (("ns", "snapshot", "no-such-ns", "--as", "bad-other"), "no namespace named"),
        (("ns", "snapshot", "bad-src", "--as", "Bad_Name"), "invalid snapshot name"),
        (("ns", "reset", "bad-src", "--to", "no-such-snap"), "no snapshot"),
        (("ns", "snapshot", "--delete", "no-such-snap"), "no snapshot"),
        (("ns", "create", "bad-new", "--fro", "bad-snap"), "unrecognized"),
        (("ns", "create", "bad-new", "--from", "bad-snap", "--seeds", SEEDS), "applies no seeds"),
    ]
    for args, words in cases:
        proc = full.cli(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert words in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
    assert _names(full) == before_ns
    assert _snapshot_ids(full) == before_snaps
    full.cli("ns", "snapshot", "--delete", "bad-snap", check=True)
    full.cli("ns", "delete", "bad-src", check=True)


def test_a_snapshot_interrupted_by_a_killed_agent_is_rolled_back_by_the_next_command(make_cluster):
    h = make_cluster(("postgres",))
    h.cli("ns", "create", "big", "--no-seed", check=True)
    with psycopg.connect(h.ns_env("big")["DATABASE_URL"]) as conn:  # enough that pg_dump takes a while
        conn.execute("create table t as select g as id, md5(g::text) as v from generate_series(1, 400000) g")
    proc = subprocess.Popen([sys.executable, "-m", "localdev.cli", "ns", "snapshot", "big", "--as", "cut"],
                            cwd=h.project, env=h.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        poll_until(lambda: _pg_snapshot_dbs(h), 60, "the snapshot's database to appear", interval=0.02)
        os.kill(h.cluster._native().state("agent").pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode != 0
    time.sleep(0.5)  # the server notices the dead connections and frees their locks
    h.cli("up", check=True)
    listed = json.loads(h.cli("ns", "snapshots", "--json", check=True).stdout)  # the next command repairs
    assert listed == []
    assert _snapshot_ids(h) == {}
    poll_until(lambda: not _pg_snapshot_dbs(h), 30, "the half-made snapshot database to go")
    # and the name is free again
    h.cli("ns", "snapshot", "big", "--as", "cut", check=True)
    assert list(_snapshot_ids(h)) == ["cut"]

    # the same for the copy `ns create --from` a live namespace takes first
    before = _pg_snapshot_dbs(h)
    proc = subprocess.Popen([sys.executable, "-m", "localdev.cli", "ns", "create", "copy", "--from", "big"],
                            cwd=h.project, env=h.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        poll_until(lambda: _pg_snapshot_dbs(h) - before, 60, "the branch copy's database to appear", interval=0.02)
        os.kill(h.cluster._native().state("agent").pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode != 0
    time.sleep(0.5)
    h.cli("up", check=True)
    assert [s["name"] for s in json.loads(h.cli("ns", "snapshots", "--json", check=True).stdout)] == ["cut"]
    with psycopg.connect(h.cluster.services["postgres"].admin_url("localdev")) as conn:
        assert conn.execute("select name, kind from snapshots order by name").fetchall() == [("cut", "user")]
    poll_until(lambda: _pg_snapshot_dbs(h) == before, 30, "the half-made branch copy to go")
    assert _names(h) == ["big"]


def test_the_reset_fixture_gives_each_test_the_seeded_state(full, tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "localdev.toml").write_text(full.config_path.read_text() + f'\n[namespaces]\nseeds = "{SEEDS}"\n')
    (project / "test_it.py").write_text(
        "import pytest\n"
        "@pytest.mark.parametrize('n', [1, 2, 3])\n"
        "def test_orders(localdev_reset, pg, n):\n"
        "    assert pg.execute('select count(*) from customers').fetchone() == (3,)\n"
        "    pg.execute('delete from order_lines'); pg.execute('delete from orders');"
        " pg.execute('delete from customers'); pg.commit()\n")
    env = {**full.env, "LOCALDEV_CONFIG": str(project / "localdev.toml")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(project)],
                          cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 passed" in proc.stdout


def test_copies_the_emulator_lost_in_a_restart_are_refused_by_name_and_mended(full):
    """MiniStack keeps nothing across a restart, the snapshots' bucket copies included: a reset or a --from that
    needs them says so and changes nothing; the next seeded create takes the seed snapshot's AWS part again."""
    full.cli("ns", "create", "rl-a", "--seeds", SEEDS, check=True)
    full.cli("ns", "snapshot", "rl-a", "--as", "rl-snap", check=True)
    env = full.ns_env("rl-a")
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("delete from order_lines")
    pid = full.cluster.runtime.state("aws").pid
    os.kill(pid, signal.SIGKILL)
    full.wait_restarted("aws", pid, 60)

    proc = full.cli("ns", "reset", "rl-a")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "cannot reset namespace 'rl-a': its seeded state is incomplete (aws: the AWS emulator no longer holds " \
           "its copy of 2 of its 2 buckets" in proc.stderr
    assert "nothing was changed" in proc.stderr and "Traceback" not in proc.stderr
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        assert conn.execute("select count(*) from order_lines").fetchone() == (0,)  # not reset halfway
    proc = full.cli("ns", "create", "rl-c", "--from", "rl-snap")
    assert proc.returncode == 1 and "snapshot 'rl-snap' is incomplete" in proc.stderr
    assert "localdev ns snapshot --delete rl-snap" in proc.stderr
    assert "rl-c" not in _names(full)

    # a seeded create replays the emulator's seeds anyway, and takes the seed snapshot's part again from them
    full.cli("ns", "create", "rl-b", "--seeds", SEEDS, check=True)
    full.cli("seed", "rl-a", "--seeds", SEEDS, "--service", "aws", check=True)
    full.cli("ns", "reset", "rl-a", check=True)
    assert_same({**state(env), "pg_owners": None}, {**state(full.ns_env("rl-b")), "pg_owners": None})
    full.cli("ns", "snapshot", "--delete", "rl-snap", check=True)
    for name in ("rl-a", "rl-b"):
        full.cli("ns", "delete", name, check=True)


@pytest.mark.long
def test_large_seeds_are_copied_not_replayed(full, tmp_path):
    sys.path.insert(0, str(Path(__file__).parent.parent / "bench"))
    from snapshots import large_seeds

    seeds = large_seeds(tmp_path, items=50_000, rows=100_000)
    full.cli("ns", "create", "lg-a", "--seeds", str(seeds), check=True, timeout=900)
    full.cli("ns", "create", "lg-b", "--seeds", str(seeds), check=True)
    env = full.ns_env("lg-b")
    ddb = _session(env).client("dynamodb", endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"])
    assert ddb.describe_table(TableName="big")["Table"]["ItemCount"] == 50_000
    assert ddb.get_item(TableName="big", Key={"pk": {"S": "item-049999"}})["Item"]["n"] == {"N": "49999"}
    with pymongo.MongoClient(env["MONGODB_URI"]) as client:
        assert client.get_default_database().big.count_documents({}) == 50_000
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        assert conn.execute("select count(*), sum(id) from big").fetchone() == (100_000, 100_000 * 100_001 // 2)
    for name in ("lg-a", "lg-b"):
        full.cli("ns", "delete", name, check=True)


# -- helpers reading the registry and the server as localdev's admin -----------------------------------
def _names(h) -> list[str]:
    return sorted(n["name"] for n in json.loads(h.cli("ns", "list", "--json", check=True).stdout))


def _snapshot_ids(h) -> dict[str, str]:
    with psycopg.connect(h.cluster.services["postgres"].admin_url("localdev")) as conn:
        if not conn.execute("select to_regclass('snapshots')").fetchone()[0]:
            return {}
        return dict(conn.execute("select name, id from snapshots where kind = 'user' order by name").fetchall())


def _pg_snapshot_dbs(h) -> set[str]:
    with psycopg.connect(h.cluster.services["postgres"].admin_url()) as conn:
        return {r[0] for r in conn.execute("select datname from pg_database where datname like 'localdev_snap_%'")}


def test_32_creates_at_once_of_a_new_seed_content_all_succeed(make_cluster, tmp_path):
    """One create replays a content with no seed snapshot yet; the others wait for it without holding a
    registry connection each (31 waiters that did ran the agent's pool dry, and creates failed with
    "couldn't get a connection")."""
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    h = make_cluster(("postgres", "dynamodb", "mongo"))
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    (seeds / "mongo" / "reviews.json").write_text('[{"_id": "r-burst", "stars": 4}]\n')
    (seeds / "postgres" / "zz_slow.sql").write_text("SELECT pg_sleep(3);\n")  # every waiter is there by its end
    names = [f"burst-{i}" for i in range(32)]
    with ThreadPoolExecutor(32) as pool:
        procs = list(pool.map(lambda n: h.cli("ns", "create", n, "--seeds", str(seeds)), names))
    assert [(p.returncode, p.stderr) for p in procs] == [(0, "")] * 32
    for name in (names[0], names[-1]):
        with pymongo.MongoClient(h.ns_env(name)["MONGODB_URI"]) as client:
            assert list(client.get_default_database().reviews.find()) == [{"_id": "r-burst", "stars": 4}]


def test_up_makes_the_seed_snapshot_of_the_projects_seeds_so_the_first_create_copies_it(make_cluster):
    """The agent `up` starts seeds a namespace of its own with the project's seeds folder, keeps it as the seed
    snapshot and deletes it: the first seeded create after `up` then copies, as later ones do. Of creates of
    a content with no snapshot yet, one replays and the others wait for its snapshot."""
    import shutil

    from localdev.snapshots import load_fixtures

    services = ("postgres", "dynamodb", "mongo")
    h = make_cluster(services, agent=False)
    seeds = h.project / "seeds"
    shutil.copytree(SEEDS, seeds)
    snapshots = h.cluster.namespaces.snapshots
    log = h.cluster._native().log_path("agent")
    made = f"the seed snapshot of {seeds} is made"

    def content() -> str:
        return load_fixtures(seeds, list(services)).content_hash

    h.cli("down", check=True)
    h.cli("up", check=True)
    # `up` waits for the agent's start-up work: the snapshot is made, its namespace gone, when `up` returns.
    assert "POST /warm by local -> 200" in log.read_text()
    assert log.read_text().count(made) == 1
    assert snapshots.seed_snapshot(content()) is not None
    assert _names(h) == []  # the agent's own namespace is gone
    h.cli("ns", "create", "first", check=True)
    env = h.ns_env("first")
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        assert conn.execute("select count(*) from products").fetchone()[0] > 0
    with pymongo.MongoClient(env["MONGODB_URI"]) as client:
        assert client.get_default_database().reviews.count_documents({}) > 0

    # New content and a create at once after `up`: it copies the snapshot `up` waited for, made once.
    (seeds / "mongo" / "reviews.json").write_text('[{"_id": "r-new", "stars": 5}]\n')
    h.cli("down", check=True)
    h.cli("up", check=True)
    h.cli("ns", "create", "at-once", check=True)
    assert snapshots.seed_snapshot(content()) is not None
    poll_until(lambda: _names(h) == ["at-once", "first"], 60, "the agent's own namespace to go")
    with pymongo.MongoClient(h.ns_env("at-once")["MONGODB_URI"]) as client:
        assert list(client.get_default_database().reviews.find()) == [{"_id": "r-new", "stars": 5}]

    # What a `down` cut short (labelled, named so) is deleted by the next agent; a user's own is not.
    h.cli("ns", "create", "seed-snapshot-0000cut", "--no-seed", "--label", "localdev=seed-snapshot", check=True)
    h.cli("ns", "create", "seed-snapshot-mine", "--no-seed", check=True)
    h.cli("down", check=True)
    before = log.read_text().count(" is made")  # (read after `down`: the last agent's line may come late)
    h.cli("up", check=True)
    poll_until(lambda: "seed-snapshot-0000cut" not in _names(h), 60, "the agent to delete the leftover")
    assert _names(h) == ["at-once", "first", "seed-snapshot-mine"]
    assert log.read_text().count(" is made") == before  # a snapshot that exists is not made again


def test_up_mends_the_seed_snapshot_part_a_restarted_emulator_lost(make_cluster):
    """MiniStack keeps nothing across a `down` and `up`, the seed snapshot's bucket copies included: the agent
    `up` starts takes that part again before `up` returns, so the first create after it does not."""
    import shutil

    from localdev.snapshots import load_fixtures

    services = ("postgres", "aws")
    h = make_cluster(services, {"aws": {"flavor": "ministack"}}, agent=False)
    seeds = h.project / "seeds"
    shutil.copytree(SEEDS, seeds)
    snapshots = h.cluster.namespaces.snapshots
    log = h.cluster._native().log_path("agent")
    content = load_fixtures(seeds, list(services)).content_hash

    h.cli("down", check=True)
    h.cli("up", check=True)
    snap = snapshots.seed_snapshot(content)
    assert snap is not None and snapshots.lost_parts(snap) == {}
    h.cli("down", check=True)
    h.cli("up", check=True)
    assert log.read_text().count(f"the seed snapshot of {seeds} is made") == 2
    mended = snapshots.seed_snapshot(content)
    assert mended["id"] == snap["id"] and snapshots.lost_parts(mended) == {}
    assert _names(h) == []
    h.cli("ns", "create", "after", check=True)
    env = h.ns_env("after")
    s3 = _session(env).client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
    assert sorted(b["Name"] for b in s3.list_buckets()["Buckets"]) == ["after-assets", "after-invoices"]
    body = s3.get_object(Bucket="after-assets", Key="lamp-2.txt")["Body"].read()
    assert body == (Path(SEEDS) / "aws" / "s3" / "assets" / "lamp-2.txt").read_bytes()
    h.cli("ns", "delete", "after", check=True)
