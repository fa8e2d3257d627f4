"""ns export / ns import / backup / restore against real services, driven by real clients.

One cluster of every service for the module (the light MiniStack flavor for aws), serving team mode on
loopback too, so the remote path (TCP, TLS, a ci token) is exercised beside the local socket. The DR drill
purges and restarts that cluster: it runs last.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import ALL_SERVICES, free_port, start_cluster

from localdev.waiting import poll_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    port = free_port()
    handle = start_cluster(tmp_path_factory, ALL_SERVICES, {"aws": {"flavor": "ministack"}},
                           extra=f'[agent]\nreap_interval = 3600\nlisten = "127.0.0.1:{port}"\n')
    handle.listen_port = port
    yield handle
    handle.close()


def ok(handle, *args, timeout: float = 300) -> subprocess.CompletedProcess:
    return handle.cli(*args, check=True, timeout=timeout)


def names(handle) -> list[str]:
    return [n["name"] for n in json.loads(ok(handle, "ns", "list", "--json").stdout)]


def sums(handle, name: str) -> dict:
    return {s: v["checksum"] for s, v in json.loads(ok(handle, "ns", "checksum", name, "--json").stdout).items()}


# -- writing data as applications do, and reading it back ---------------------------------------------------
def clients(env: dict):
    import boto3
    import psycopg
    import pymongo
    import redis

    session = boto3.session.Session(aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                    aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_REGION"])
    return {
        "pg": psycopg.connect(env["DATABASE_URL"], autocommit=True),
        "ddb": session.client("dynamodb", endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"]),
        "s3": session.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"]),
        "sqs": session.client("sqs", endpoint_url=env["AWS_ENDPOINT_URL"]),
        "mongo": pymongo.MongoClient(env["MONGODB_URI"]).get_default_database(),
        "redis": redis.Redis.from_url(env["REDIS_URL"], decode_responses=True),
        "prefix": env["REDIS_KEY_PREFIX"], "ns": env["LOCALDEV_NAMESPACE"],
    }


def write_rich(env: dict) -> None:
    """Data of many kinds in every service, written by clients (not seeds)."""
    from bson import Binary, Decimal128, Int64, ObjectId

    c = clients(env)
    pg = c["pg"]
    pg.execute("CREATE SCHEMA billing")
    pg.execute("CREATE TABLE customers (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text UNIQUE NOT NULL,"
               " tags text[], profile jsonb, photo bytea, seen timestamptz, score numeric(10, 3))")
    pg.execute("CREATE TABLE billing.invoices (id serial PRIMARY KEY, customer bigint REFERENCES customers (id), "
               "total numeric NOT NULL CHECK (total >= 0), note text)")
    pg.execute("CREATE INDEX invoices_by_customer ON billing.invoices (customer, total DESC)")
    pg.execute("CREATE VIEW billing.big AS SELECT * FROM billing.invoices WHERE total > 100")
    with pg.cursor() as cur:
        cur.executemany("INSERT INTO customers (email, tags, profile, photo, seen, score) VALUES (%s, %s, %s, %s, %s, %s)",
                        [(f"u{i}@example.com", ["a", f"t{i % 3}"], json.dumps({"i": i, "ü": "ñ"}), bytes([i % 256, 0]),
                          dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=i), Decimal(i) / 7)
                         for i in range(300)])
        cur.executemany("INSERT INTO billing.invoices (customer, total, note) VALUES (%s, %s, %s)",
                        [(1 + i % 300, Decimal(i * 3), None if i % 5 else "tab\there\nnewline \\ backslash")
                         for i in range(500)])
    ddb = c["ddb"]
    ddb.create_table(TableName="events", BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "N"},
                                           {"AttributeName": "kind", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                     GlobalSecondaryIndexes=[{"IndexName": "by_kind", "Projection": {"ProjectionType": "KEYS_ONLY"},
                                              "KeySchema": [{"AttributeName": "kind", "KeyType": "HASH"}]}],
                     LocalSecondaryIndexes=[{"IndexName": "by_kind_local", "Projection": {"ProjectionType": "ALL"},
                                             "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                                           {"AttributeName": "kind", "KeyType": "RANGE"}]}],
                     StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    ddb.update_time_to_live(TableName="events", TimeToLiveSpecification={"AttributeName": "expires", "Enabled": True})
    for i in range(120):
        ddb.put_item(TableName="events", Item={
            "pk": {"S": f"user#{i % 7}"}, "sk": {"N": str(i)}, "kind": {"S": "click" if i % 2 else "view"},
            "price": {"N": "12.50"}, "ok": {"BOOL": i % 3 == 0}, "nothing": {"NULL": True},
            "detail": {"M": {"path": {"S": f"/p/{i}"}, "list": {"L": [{"N": "1"}, {"S": "two"}]}}},
            "expires": {"N": str(4_000_000_000 + i)}})
    ddb.create_table(TableName="blobs", AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "B"}],
                     KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                     ProvisionedThroughput={"ReadCapacityUnits": 3, "WriteCapacityUnits": 2})
    ddb.put_item(TableName="blobs", Item={"id": {"B": b"\x00\xffkey"}, "n": {"N": "-0.001"}})
    s3 = c["s3"]
    bucket = f"{c['ns']}-media"
    s3.create_bucket(Bucket=bucket)
    s3.create_bucket(Bucket=f"{c['ns']}-empty")
    s3.put_object(Bucket=bucket, Key="docs/readme.txt", Body=b"hello\n")
    s3.put_object(Bucket=bucket, Key="img/pixel.bin", Body=bytes(range(256)) * 40, ContentType="image/x-raw",
                  Metadata={"origin": "camera", "take": "3"})
    s3.put_object(Bucket=bucket, Key="data.json", Body=b'{"a": 1}', ContentType="application/json")
    sqs = c["sqs"]
    url = sqs.create_queue(QueueName="jobs", Attributes={"VisibilityTimeout": "45", "DelaySeconds": "2"})["QueueUrl"]
    sqs.create_queue(QueueName="orders.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"})
    sqs.send_message(QueueUrl=url, MessageBody="in flight")
    db = c["mongo"]
    db.people.create_index([("email", 1)], unique=True, name="email_unique")
    db.people.create_index([("city", 1), ("age", -1)], name="city_age")
    db.people.insert_many([{"_id": ObjectId(), "email": f"p{i}@x.org", "age": Int64(20 + i), "city": ["Oslo", "Lyon"][i % 2],
                            "balance": Decimal128(f"{i}.10"), "blob": Binary(bytes([i]) * 3), "when":
                            dt.datetime(2026, 3, 1, 12, 0, i % 60), "nested": {"list": [1, 2.5, None, True]}}
                           for i in range(150)])
    db.create_collection("empty_one")
    r, p = c["redis"], c["prefix"]
    r.set(p + "greeting", "hello ✓")
    r.set(p + "session", "token", ex=3600)
    r.hset(p + "user:1", mapping={"name": "Ada", "plan": "pro"})
    r.rpush(p + "queue", "a", "b", "a")
    r.sadd(p + "tags", "x", "y", "z")
    r.zadd(p + "board", {"ada": 10, "bob": 7.5, "cy": -1})
    close(c)


def close(c: dict) -> None:
    c["pg"].close()
    c["redis"].close()
    c["mongo"].client.close()


def read_all(env: dict, probe: bool = False) -> dict:
    """Every service's content, exactly, in a comparable form (namespace names taken out). `probe`: also the
    id the next insert gets (which moves the identity sequence on)."""
    c = clients(env)
    out: dict = {}
    pg = c["pg"]
    out["pg"] = {t: pg.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                 for t in ("customers", "billing.invoices", "billing.big")}
    out["pg_seq"] = pg.execute("SELECT last_value FROM billing.invoices_id_seq").fetchone()
    if probe:
        out["pg_next"] = pg.execute("INSERT INTO customers (email) VALUES ('new@x') RETURNING id").fetchone()
        pg.execute("DELETE FROM customers WHERE email = 'new@x'")
    ddb = c["ddb"]
    out["ddb"] = {}
    for table in sorted(ddb.list_tables()["TableNames"]):
        desc = ddb.describe_table(TableName=table)["Table"]
        items = sorted((json.dumps(i, sort_keys=True, default=lambda b: base64.b64encode(b).decode())
                        for i in ddb.scan(TableName=table)["Items"]))
        out["ddb"][table] = {
            "keys": desc["KeySchema"], "attrs": sorted(desc["AttributeDefinitions"], key=lambda d: d["AttributeName"]),
            "gsi": [(g["IndexName"], g["KeySchema"], g["Projection"]) for g in desc.get("GlobalSecondaryIndexes", [])],
            "lsi": [(g["IndexName"], g["KeySchema"], g["Projection"]) for g in desc.get("LocalSecondaryIndexes", [])],
            "stream": desc.get("StreamSpecification"), "billing": (desc.get("BillingModeSummary") or {}).get("BillingMode"),
            "throughput": {k: desc["ProvisionedThroughput"][k] for k in ("ReadCapacityUnits", "WriteCapacityUnits")},
            "ttl": ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"], "items": items}
    s3 = c["s3"]
    out["s3"] = {}
    for b in sorted(x["Name"] for x in s3.list_buckets()["Buckets"]):
        objects = {}
        for o in s3.list_objects_v2(Bucket=b).get("Contents", []):
            got = s3.get_object(Bucket=b, Key=o["Key"])
            objects[o["Key"]] = (got["Body"].read(), got["ContentType"], got.get("Metadata"))
        out["s3"][b.removeprefix(c["ns"] + "-")] = objects
    sqs = c["sqs"]
    out["sqs"] = {}
    for url in sqs.list_queues().get("QueueUrls", []):
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        out["sqs"][url.rsplit("/", 1)[1]] = {k: attrs.get(k) for k in ("VisibilityTimeout", "DelaySeconds", "FifoQueue",
                                                                       "ContentBasedDeduplication")}
    db = c["mongo"]
    out["mongo"] = {n: (list(db[n].find({}, sort=[("_id", 1)])),
                        sorted((ix["name"], list(ix["key"].items()), ix.get("unique")) for ix in db[n].list_indexes()))
                    for n in sorted(db.list_collection_names())}
    r, p = c["redis"], c["prefix"]
    out["redis"] = {
        "greeting": r.get(p + "greeting"), "session": (r.get(p + "session"), r.ttl(p + "session") > 3500),
        "user": r.hgetall(p + "user:1"), "queue": r.lrange(p + "queue", 0, -1), "tags": r.smembers(p + "tags"),
        "board": r.zrange(p + "board", 0, -1, withscores=True), "keys": sorted(k[len(p):] for k in r.keys(p + "*"))}
    return out


@pytest.fixture(scope="module")
def rich(cluster):
    """A namespace with client-written data in every service, and what it holds."""
    ok(cluster, "ns", "create", "rich", "--no-seed", "--ttl", "2h", "--label", "team=core")
    env = cluster.ns_env("rich")
    write_rich(env)
    return env


# -- round trips --------------------------------------------------------------------------------------------
def test_export_import_round_trip_is_exact_in_every_service(cluster, rich, tmp_path):
    archive = tmp_path / "rich.tar.zst"
    out = ok(cluster, "ns", "export", "rich", "-o", str(archive)).stdout
    assert "postgres: 800 rows, 2 tables" in out and "dynamodb: 121 items, 2 tables" in out
    assert "note: aws: 1 SQS message(s) were in the queues; messages are not exported" in out
    assert archive.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"  # zstd
    imported = ok(cluster, "ns", "import", str(archive), "--as", "rich-copy", "--json")
    info = json.loads(imported.stdout)
    assert info["imported"]["mongo"] == {"collections": 2, "documents": 150}
    assert info["imported"]["redis"] == {"keys": 6}
    assert sums(cluster, "rich-copy") == sums(cluster, "rich")
    source, copy = read_all(rich, probe=True), read_all(cluster.ns_env("rich-copy"), probe=True)
    assert copy == source
    assert source["ddb"]["events"]["ttl"] == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires"}
    assert source["ddb"]["events"]["stream"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert source["s3"]["media"]["img/pixel.bin"][1:] == ("image/x-raw", {"origin": "camera", "take": "3"})
    assert source["s3"]["empty"] == {}
    assert set(source["mongo"]) == {"empty_one", "people"}
    # the copy is its own: new credentials, and writes to it stay there
    assert cluster.ns_env("rich-copy")["PGPASSWORD"] != rich["PGPASSWORD"]
    clients(cluster.ns_env("rich-copy"))["redis"].set("rich-copy:greeting", "changed")
    assert clients(rich)["redis"].get("rich:greeting") == "hello ✓"
    assert sums(cluster, "rich-copy")["redis"] != sums(cluster, "rich")["redis"]



def test_redis_keys_of_many_scan_pages_round_trip_whole(cluster, tmp_path):
    """2500 keys: several SCAN pages, each read by one pipeline, and three import batches."""
    ok(cluster, "ns", "create", "keys-a", "--no-seed")
    r = clients(cluster.ns_env("keys-a"))["redis"]
    r.mset({f"keys-a:k{i:04d}": f"v{i}" for i in range(2500)})
    r.expire("keys-a:k1234", 900)
    archive = tmp_path / "keys.tar.zst"
    ok(cluster, "ns", "export", "keys-a", "-o", str(archive))
    info = json.loads(ok(cluster, "ns", "import", str(archive), "--as", "keys-b", "--json").stdout)
    assert info["imported"]["redis"] == {"keys": 2500}
    b = clients(cluster.ns_env("keys-b"))["redis"]
    assert b.mget([f"keys-b:k{i:04d}" for i in range(2500)]) == [f"v{i}" for i in range(2500)]
    assert 890 <= b.ttl("keys-b:k1234") <= 900 and b.ttl("keys-b:k0000") == -1
    assert sums(cluster, "keys-b")["redis"] == sums(cluster, "keys-a")["redis"]
    for name in ("keys-a", "keys-b"):
        ok(cluster, "ns", "delete", name)

def test_plain_tar_and_stdout_give_the_same_archive_content(cluster, rich, tmp_path):
    plain = tmp_path / "rich.tar"
    ok(cluster, "ns", "export", "rich", "-o", str(plain))
    with tarfile.open(plain) as tar:  # a plain tar any tool reads: manifest first, then the seeds tree
        members = tar.getnames()
        assert members[0] == "manifest.json" and "seeds/postgres/dump.sql" in members
        assert "seeds/redis/keys.json" in members and "seeds/aws/s3-metadata.json" in members
        manifest = json.loads(tar.extractfile("manifest.json").read())
    assert manifest["format_version"] == 1 and manifest["namespace"] == "rich"
    assert manifest["services"]["postgres"]["version"].startswith("PostgreSQL 15")
    streamed = subprocess.run([sys.executable, "-m", "localdev.cli", "ns", "export", "rich", "-o", "-"],
                              env=cluster.env, cwd=cluster.project, capture_output=True, timeout=120, check=True).stdout
    import zstandard

    with tarfile.open(fileobj=io.BytesIO(zstandard.ZstdDecompressor().stream_reader(io.BytesIO(streamed)).read())) as t:
        again = json.loads(t.extractfile("manifest.json").read())
    def steady(files: dict) -> dict:  # a key's TTL is written as the seconds left, which go down meanwhile
        return {k: v for k, v in files.items() if k != "seeds/redis/keys.json"}
    assert steady(again["files"]) == steady(manifest["files"])  # same data, same files
    ok(cluster, "ns", "import", str(plain), "--as", "rich-plain", "--ttl", "30m", "--label", "from=tar")
    assert sums(cluster, "rich-plain") == sums(cluster, "rich")
    ok(cluster, "ns", "delete", "rich-plain")


def test_checksum_does_not_depend_on_insertion_order(cluster):
    for name, order in (("order-a", range(50)), ("order-b", reversed(range(50)))):
        ok(cluster, "ns", "create", name, "--no-seed")
        c = clients(cluster.ns_env(name))
        c["pg"].execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        c["ddb"].create_table(TableName="tab", BillingMode="PAY_PER_REQUEST",
                              AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
                              KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
        c["s3"].create_bucket(Bucket=f"{name}-bkt")
        for i in order:
            c["pg"].execute("INSERT INTO t VALUES (%s, %s)", (i, str(i)))
            c["ddb"].put_item(TableName="tab", Item={"id": {"N": str(i)}})
            c["mongo"].docs.insert_one({"_id": i, "v": str(i)})
            c["redis"].sadd(f"{name}:s", str(i))
            c["s3"].put_object(Bucket=f"{name}-bkt", Key=f"k{i}", Body=str(i).encode())
    assert sums(cluster, "order-a") == sums(cluster, "order-b")
    clients(cluster.ns_env("order-b"))["pg"].execute("UPDATE t SET v = 'x' WHERE id = 3")
    a, b = sums(cluster, "order-a"), sums(cluster, "order-b")
    assert a["postgres"] != b["postgres"] and {k: v for k, v in a.items() if k != "postgres"} == \
        {k: v for k, v in b.items() if k != "postgres"}
    for name in ("order-a", "order-b"):
        ok(cluster, "ns", "delete", name)


def test_export_while_clients_write_is_consistent_per_service(cluster, tmp_path):
    """What "consistent" means here, per service:
    - postgres: one transaction snapshot (pg_dump --snapshot): every transfer is whole, the sum is constant;
    - dynamodb, mongo, redis, s3: each item/document/key/object is whole (as one write left it), the set of
      them is not a point in time (a scan, a cursor, SCAN, a listing)."""
    ok(cluster, "ns", "create", "busy", "--no-seed")
    env = cluster.ns_env("busy")
    c = clients(env)
    c["pg"].execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)")
    c["pg"].execute("INSERT INTO accounts SELECT g, 1000 FROM generate_series(1, 20) g")
    c["ddb"].create_table(TableName="pairs", BillingMode="PAY_PER_REQUEST",
                          AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
                          KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    c["s3"].create_bucket(Bucket="busy-bb1")
    stop = threading.Event()
    errors: list = []

    def writer() -> None:
        w = clients(env)
        i = 0
        try:
            while not stop.is_set():
                i += 1
                with w["pg"].transaction():
                    w["pg"].execute("UPDATE accounts SET balance = balance - 7 WHERE id = %s", (1 + i % 20,))
                    w["pg"].execute("UPDATE accounts SET balance = balance + 7 WHERE id = %s", (1 + (i * 7) % 20,))
                w["ddb"].put_item(TableName="pairs", Item={"id": {"N": str(i % 50)}, "a": {"N": str(i)}, "b": {"N": str(i)}})
                w["mongo"].pairs.replace_one({"_id": i % 50}, {"_id": i % 50, "a": i, "b": i}, upsert=True)
                w["redis"].hset(f"busy:pair:{i % 50}", mapping={"a": i, "b": i})
                w["s3"].put_object(Bucket="busy-bb1", Key=f"o{i % 20}", Body=(str(i) * 1000).encode(),
                                   Metadata={"n": str(i)})
        except Exception as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    # under way in every service before the first export (making clients in threads takes a while here)
    poll_until(lambda: c["redis"].exists("busy:pair:30") and c["ddb"].scan(TableName="pairs", Select="COUNT")["Count"]
               >= 30 and c["mongo"].pairs.count_documents({}) >= 30, 120, "the writers to get going")
    archives = []
    try:
        for n in range(2):
            archive = tmp_path / f"busy-{n}.tar"
            ok(cluster, "ns", "export", "busy", "-o", str(archive))
            archives.append(archive)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors
    for archive in archives:
        folder = tmp_path / archive.stem
        with tarfile.open(archive) as tar:
            tar.extractall(folder, filter="data")
        dump = (folder / "seeds/postgres/dump.sql").read_text()
        rows = dump.split("COPY public.accounts (id, balance) FROM stdin;\n")[1].split("\\.\n")[0].splitlines()
        assert len(rows) == 20 and sum(int(r.split("\t")[1]) for r in rows) == 20 * 1000
        items = [json.loads(line.rstrip(",")) for line in
                 (folder / "seeds/dynamodb/pairs.json").read_text().splitlines()[2:-1]]
        assert items and all(i["a"] == i["b"] for i in items)
        docs = [json.loads(line.rstrip(",")) for line in (folder / "seeds/mongo/pairs.json").read_text().splitlines()[1:-1]]
        assert docs and all(d["a"] == d["b"] for d in docs)
        keys = json.loads((folder / "seeds/redis/keys.json").read_text())
        assert keys and all(k["value"]["a"] == k["value"]["b"] for k in keys)
        meta = json.loads((folder / "seeds/aws/s3-metadata.json").read_text())["bb1"]
        for key, entry in meta.items():
            assert (folder / "seeds/aws/s3/bb1" / key).read_text() == entry["Metadata"]["n"] * 1000
        # and the archive imports, checked against its own manifest
        ok(cluster, "ns", "import", str(archive), "--as", f"busy-copy-{archive.stem[-1]}")
    for name in ("busy", "busy-copy-0", "busy-copy-1"):
        ok(cluster, "ns", "delete", name)


# -- bad archives: exit 2, nothing made ----------------------------------------------------------------------
def _rewrite(source: Path, dest: Path, change) -> None:
    """A copy of the plain tar `source` with `change(name, data) -> (name, data) | None` applied per file."""
    with tarfile.open(source) as src, tarfile.open(dest, "w") as out:
        for member in src:
            data = src.extractfile(member).read() if member.isfile() else None
            changed = change(member.name, data) if member.isfile() else (member.name, None)
            if changed is None:
                continue
            info = tarfile.TarInfo(changed[0])
            if changed[1] is None:
                info.type = tarfile.DIRTYPE
                out.addfile(info)
            else:
                info.size = len(changed[1])
                out.addfile(info, io.BytesIO(changed[1]))


def _with_member(source: Path, dest: Path, info: tarfile.TarInfo, data: bytes = b"") -> None:
    _rewrite(source, dest, lambda n, d: (n, d))
    with tarfile.open(dest, "a") as out:
        info.size = len(data) if info.isfile() else 0
        out.addfile(info, io.BytesIO(data) if info.isfile() else None)


def test_bad_archives_exit_2_and_make_nothing(cluster, tmp_path):
    ok(cluster, "ns", "create", "small", "--seeds", str(Path(__file__).parent.parent / "seeds"))
    good = tmp_path / "good.tar"
    ok(cluster, "ns", "export", "small", "-o", str(good))
    zst = tmp_path / "good.tar.zst"
    ok(cluster, "ns", "export", "small", "-o", str(zst))
    bad: dict[str, Path] = {}
    data = good.read_bytes()
    (bad_path := tmp_path / "truncated.tar").write_bytes(data[: len(data) // 2])
    bad["cut off"] = bad_path
    (bad_path := tmp_path / "truncated.tar.zst").write_bytes(zst.read_bytes()[:-200])
    bad["cut off, compressed"] = bad_path

    def tamper(name, d):
        return (name, d.replace(b"Ada", b"Eve")) if name == "seeds/postgres/dump.sql" else (name, d)
    _rewrite(good, bad_path := tmp_path / "tampered.tar", tamper)
    bad["checksum mismatch"] = bad_path

    def newer(name, d):
        if name != "manifest.json":
            return (name, d)
        manifest = json.loads(d)
        manifest["format_version"] = 99
        return (name, json.dumps(manifest).encode())
    _rewrite(good, bad_path := tmp_path / "newer.tar", newer)
    bad["newer format"] = bad_path
    _rewrite(good, bad_path := tmp_path / "missing.tar", lambda n, d: None if n.endswith("keys.json") else (n, d))
    bad["file missing"] = bad_path
    _with_member(good, bad_path := tmp_path / "extra.tar", tarfile.TarInfo("seeds/redis/more.json"), b"[]")
    bad["file not in the manifest"] = bad_path
    for label, name in (("absolute path", "/tmp/evil"), ("dot-dot path", "seeds/../../evil")):
        _with_member(good, bad_path := tmp_path / f"{label.split()[0]}.tar", tarfile.TarInfo(name), b"x")
        bad[label] = bad_path
    for label, kind in (("symlink", tarfile.SYMTYPE), ("hardlink", tarfile.LNKTYPE)):
        info = tarfile.TarInfo("seeds/postgres/link.sql")
        info.type, info.linkname = kind, "/etc/passwd"
        _with_member(good, bad_path := tmp_path / f"{label}.tar", info)
        bad[label] = bad_path
    (bad_path := tmp_path / "noise.tar.zst").write_bytes(os.urandom(5000))
    bad["not an archive"] = bad_path

    before = names(cluster)
    for label, path in bad.items():
        proc = cluster.cli("ns", "import", str(path), "--as", "victim")
        assert proc.returncode == 2, (label, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr and proc.stderr.startswith("localdev: "), (label, proc.stderr)
        assert names(cluster) == before, label
    assert "does not match its SHA-256" in cluster.cli("ns", "import", str(bad["checksum mismatch"]), "--as", "v").stderr
    assert "newer localdev" in cluster.cli("ns", "import", str(bad["newer format"]), "--as", "v").stderr
    assert "outside its folder" in cluster.cli("ns", "import", str(bad["dot-dot path"]), "--as", "v").stderr
    assert "not a file or a folder" in cluster.cli("ns", "import", str(bad["symlink"]), "--as", "v").stderr
    assert not Path("/tmp/evil").exists()
    taken = cluster.cli("ns", "import", str(good), "--as", "small")
    assert taken.returncode == 2 and "is taken" in taken.stderr
    # nothing of `victim` anywhere: no database, no redis user
    pg = clients(cluster.ns_env("small"))["pg"]
    import psycopg

    with psycopg.connect(cluster.services["postgres"].admin_url()) as admin:
        assert admin.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'ns_victim%'").fetchone() == (0,)
    assert cluster.services["redis"].admin().acl_getuser("ns_victim") is None
    pg.close()
    ok(cluster, "ns", "delete", "small")


def test_a_bad_sql_file_in_an_archive_is_reported_at_its_line(cluster, tmp_path):
    """A well-formed archive whose manifest matches, with SQL the server refuses: the seed loader's
    file:line error, exit 2, and the half-made namespace rolled back."""
    ok(cluster, "ns", "create", "sql-src", "--no-seed")
    clients(cluster.ns_env("sql-src"))["pg"].execute("CREATE TABLE t (id int)")
    good = tmp_path / "sql.tar"
    ok(cluster, "ns", "export", "sql-src", "-o", str(good))
    folder = tmp_path / "x"
    with tarfile.open(good) as tar:
        tar.extractall(folder, filter="data")
    dump = folder / "seeds/postgres/dump.sql"
    lines = dump.read_text().splitlines(keepends=True)
    lines.insert(len(lines) - 3, "INSERT INTO public.t VALUES ('not a number');\n")
    dump.write_text("".join(lines))
    from localdev.exports import sha256_file

    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["seeds/postgres/dump.sql"] = sha256_file(dump)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    bad = tmp_path / "bad-sql.tar"
    with tarfile.open(bad, "w") as out:
        out.add(folder / "manifest.json", "manifest.json")
        out.add(folder / "seeds", "seeds")
    before = names(cluster)
    proc = cluster.cli("ns", "import", str(bad), "--as", "sql-copy")
    assert proc.returncode == 2
    assert f"{bad}:seeds/postgres/dump.sql:{len(lines) - 3}: invalid input syntax for type integer" in proc.stderr
    assert names(cluster) == before
    ok(cluster, "ns", "delete", "sql-src")


def test_dynamodb_sets_and_binaries_round_trip_and_what_the_format_cannot_hold_is_refused(cluster, tmp_path):
    ok(cluster, "ns", "create", "odd", "--no-seed")
    c = clients(cluster.ns_env("odd"))
    c["ddb"].create_table(TableName="sets", BillingMode="PAY_PER_REQUEST",
                          AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                          KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    odd = {"id": {"S": "a"}, "tags": {"SS": ["x", "y"]}, "sizes": {"NS": ["1", "2.50"]}, "raw": {"B": b"\x00\xff"},
           "blobs": {"BS": [b"\x01", b"\x02"]}, "nested": {"M": {"s": {"SS": ["z"]}}}}
    c["ddb"].put_item(TableName="sets", Item=odd)
    c["ddb"].put_item(TableName="sets", Item={"id": {"S": "plain"}, "n": {"N": "3"}})
    ok(cluster, "ns", "export", "odd", "-o", str(tmp_path / "odd.tar"))
    with tarfile.open(tmp_path / "odd.tar") as t:
        lines = t.extractfile("seeds/dynamodb/sets.json").read().decode().splitlines()
    assert sum(line.startswith('{"$dynamodb":') for line in lines) == 1  # the other item stays plain JSON
    ok(cluster, "ns", "import", str(tmp_path / "odd.tar"), "--as", "odd-copy")
    copy = clients(cluster.ns_env("odd-copy"))["ddb"]
    got = copy.get_item(TableName="sets", Key={"id": {"S": "a"}}, ConsistentRead=True)["Item"]
    assert {k: (sorted(v["SS"]) if "SS" in v else sorted(v["NS"]) if "NS" in v else sorted(v["BS"]) if "BS" in v else v)
            for k, v in got.items()} == {"id": {"S": "a"}, "tags": ["x", "y"], "sizes": ["1", "2.5"],
                                         "raw": {"B": b"\x00\xff"}, "blobs": [b"\x01", b"\x02"],
                                         "nested": {"M": {"s": {"SS": ["z"]}}}}
    assert sums(cluster, "odd-copy")["dynamodb"] == sums(cluster, "odd")["dynamodb"]
    ok(cluster, "ns", "delete", "odd-copy")
    c["ddb"].delete_table(TableName="sets")
    c["s3"].create_bucket(Bucket="not-prefixed-odd")
    proc = cluster.cli("ns", "export", "odd", "-o", str(tmp_path / "odd.tar"))
    assert proc.returncode == 2 and "does not start with 'odd-'" in proc.stderr
    ok(cluster, "ns", "delete", "odd")


# -- interrupted imports ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def big_archive(cluster, tmp_path_factory) -> Path:
    """An export whose import takes several seconds (a DynamoDB replay): time to kill something mid-way."""
    tmp_path = tmp_path_factory.mktemp("big")
    seeds = tmp_path / "big-seeds" / "dynamodb"
    seeds.mkdir(parents=True)
    items = ",\n".join(json.dumps({"id": i, "body": "x" * 100}) for i in range(10000))
    (seeds / "big.json").write_text('{"table": {"AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "N"}],'
                                    ' "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}]}, "items": [\n'
                                    + items + "\n]}\n")
    ok(cluster, "ns", "create", "big", "--seeds", str(seeds.parent), timeout=600)
    archive = tmp_path / "big.tar.zst"
    ok(cluster, "ns", "export", "big", "-o", str(archive))
    ok(cluster, "ns", "delete", "big")
    return archive


def _registry_row(cluster, name: str) -> dict | None:
    from psycopg.rows import dict_row

    with cluster.cluster.namespaces.pool().connection() as conn:
        return conn.cursor(row_factory=dict_row).execute("SELECT * FROM namespaces WHERE name = %s",
                                                         (name,)).fetchone()


def _leftovers(cluster, row: dict) -> list[str]:
    """What of a namespace's secrets still has something in any service."""
    import psycopg

    from localdev.names import Namespace

    ns = Namespace(name=row["name"], region=row["region"], secrets=row["secrets"])
    found = []
    with psycopg.connect(cluster.services["postgres"].admin_url()) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (ns.db_name,)).fetchone():
            found.append("postgres database")
    with cluster.services["dynamodb"].client(ns) as ddb:
        if ddb.list_tables()["TableNames"]:
            found.append("dynamodb tables")
    if cluster.services["redis"].admin().acl_getuser(cluster.services["redis"].user(ns)):
        found.append("redis user")
    if ns.db_name in cluster.services["mongo"].admin().list_database_names():
        found.append("mongo database")
    return found


@pytest.mark.long
def test_after_a_killed_agent_the_same_import_rolls_back_and_imports_whole(cluster, big_archive):
    archive = big_archive
    proc = subprocess.Popen([sys.executable, "-m", "localdev.cli", "ns", "import", str(archive), "--as", "cut"],
                            env=cluster.env, cwd=cluster.project, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    poll_until(lambda: (_registry_row(cluster, "cut") or {}).get("state") == "creating", 60, "the import to start")
    time.sleep(1.0)  # well inside the 10 000-item replay (~5 s)
    agent = cluster.cluster._native().state("agent").pid
    os.kill(agent, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == 1
    row = _registry_row(cluster, "cut")
    assert row["state"] == "creating"
    ok(cluster, "up")  # the agent back
    assert {n["name"]: n["state"] for n in json.loads(ok(cluster, "ns", "list", "--json").stdout)}["cut"] == "interrupted"
    # the next command on the name (the same import again) rolls the half-made one back, then imports whole
    ok(cluster, "ns", "import", str(archive), "--as", "cut", timeout=600)
    assert _registry_row(cluster, "cut")["secrets"] != row["secrets"]
    # nothing of the killed attempt is left: its AWS key has no tables, its PostgreSQL password no login
    from localdev.names import Namespace

    with cluster.services["dynamodb"].client(Namespace("cut", row["region"], row["secrets"])) as ddb:
        assert ddb.list_tables()["TableNames"] == []
    import psycopg

    old_url = cluster.ns_env("cut")["DATABASE_URL"].replace(cluster.ns_env("cut")["PGPASSWORD"],
                                                             row["secrets"]["postgres"]["password"])
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(old_url)
    assert json.loads(ok(cluster, "ns", "checksum", "cut", "--json").stdout)["dynamodb"]["counts"]["items"] == 10000
    staging = cluster.home / "exports"
    assert not staging.exists() or list(staging.iterdir()) == []  # the killed agent's staging went too
    ok(cluster, "ns", "delete", "cut")


def test_kill_9_of_the_agent_mid_import_leaves_nothing_after_the_next_command(cluster, big_archive):
    archive = big_archive
    proc = subprocess.Popen([sys.executable, "-m", "localdev.cli", "ns", "import", str(archive), "--as", "cut2"],
                            env=cluster.env, cwd=cluster.project, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    poll_until(lambda: (_registry_row(cluster, "cut2") or {}).get("state") == "creating", 60, "the import to start")
    time.sleep(1.0)
    os.kill(cluster.cluster._native().state("agent").pid, signal.SIGKILL)
    proc.wait(timeout=60)
    row = _registry_row(cluster, "cut2")
    ok(cluster, "up")
    assert "cut2" in ok(cluster, "ns", "gc").stdout
    assert _registry_row(cluster, "cut2") is None and _leftovers(cluster, row) == []


@pytest.mark.long
def test_kill_9_of_the_cli_mid_import_gives_a_whole_namespace_or_none(cluster, big_archive):
    archive = big_archive
    for delay in (0.05, 1.5):  # during the upload, then during the replay
        proc = subprocess.Popen([sys.executable, "-m", "localdev.cli", "ns", "import", str(archive), "--as", "cli-cut"],
                                env=cluster.env, cwd=cluster.project)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # the agent finishes or drops what it was sent: wait until no command holds the name
        poll_until(lambda: (_registry_row(cluster, "cli-cut") or {}).get("state") != "creating", 120, "the import")
        row = _registry_row(cluster, "cli-cut")
        if row is not None:
            assert json.loads(ok(cluster, "ns", "checksum", "cli-cut", "--json").stdout)["dynamodb"]["counts"] == \
                {"tables": 1, "items": 10000}
            ok(cluster, "ns", "delete", "cli-cut")


# -- team mode: the agent is remote ---------------------------------------------------------------------------
def test_export_and_import_through_a_remote_agent_with_a_ci_token(cluster, rich, tmp_path):
    token = ok(cluster, "token", "create", "ci-exports", "--role", "ci").stdout.strip()
    remote = {"LOCALDEV_URL": f"https://127.0.0.1:{cluster.listen_port}", "LOCALDEV_TOKEN": token,
              "LOCALDEV_CA": str(cluster.home / "tls" / "ca.pem"), "LOCALDEV_HOME": str(tmp_path / "nothing-here"),
              "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    # a ci token sees only its own namespaces: `rich` is not one of them
    assert cluster.cli("ns", "export", "rich", "-o", str(tmp_path / "no.tar"), env=remote).returncode == 1
    archive = tmp_path / "rich.tar.zst"
    ok(cluster, "ns", "export", "rich", "-o", str(archive))
    imported = cluster.cli("ns", "import", str(archive), "--as", "remote-copy", env=remote)
    assert imported.returncode == 0, imported.stderr
    back = tmp_path / "back.tar.zst"
    assert cluster.cli("ns", "export", "remote-copy", "-o", str(back), env=remote).returncode == 0
    assert sums(cluster, "remote-copy") == sums(cluster, "rich")
    restore_like = cluster.cli("backup", "-o", str(tmp_path / "b"), env=remote)
    assert restore_like.returncode == 2 and "needs admin" in restore_like.stderr
    ok(cluster, "ns", "delete", "remote-copy")
    ok(cluster, "token", "revoke", "ci-exports")


# -- backup and restore: the DR drill (runs last: it purges the cluster) ----------------------------------
def test_restore_refuses_names_that_exist_and_keeps_secret_files_private(cluster, rich, tmp_path):
    ok(cluster, "ns", "create", "second", "--ttl", "none", "--seeds", str(Path(__file__).parent.parent / "seeds"))
    dest = tmp_path / "bk"
    ok(cluster, "backup", "-o", str(dest))
    assert oct(dest.stat().st_mode & 0o777) == "0o700"
    for path in [dest / "backup.json", *(dest / "namespaces").iterdir()]:
        assert oct(path.stat().st_mode & 0o777) == "0o600", path
    index = json.loads((dest / "backup.json").read_text())
    assert {e["name"] for e in index["namespaces"]} >= {"rich", "second"}
    assert cluster.cli("backup", "-o", str(dest)).returncode == 2  # never into a folder that has something
    before = names(cluster)
    proc = cluster.cli("restore", str(dest))
    assert proc.returncode == 2 and "exists in this cluster" in proc.stderr
    assert names(cluster) == before
    skipped = ok(cluster, "restore", str(dest), "--skip-existing")
    assert "restored 0 namespace(s)" in skipped.stdout
    (dest / "namespaces" / "second.tar.zst").write_bytes(b"changed")
    ok(cluster, "ns", "delete", "second")
    proc = cluster.cli("restore", str(dest), "--skip-existing")
    assert proc.returncode == 2 and "does not match its SHA-256" in proc.stderr and "second" not in names(cluster)


def test_dr_drill_backup_purge_up_restore_gives_back_data_and_old_credentials(cluster, rich, tmp_path):
    """Essential (not marked long): the backup/restore guarantee end to end, on a purged cluster."""
    ok(cluster, "ns", "create", "dr-seeded", "--ttl", "none", "--seeds", str(Path(__file__).parent.parent / "seeds"))
    extra = clients(cluster.ns_env("dr-seeded"))
    extra["pg"].execute("INSERT INTO customers (email, name) VALUES ('later@x', 'Later')")  # client writes on top
    extra["mongo"].reviews.insert_one({"sku": "NEW-1", "customer_id": 99, "stars": 5})
    token = ok(cluster, "token", "create", "dr-admin", "--role", "admin").stdout.strip()
    content = read_all(rich)
    before = {n: sums(cluster, n) for n in ("rich", "dr-seeded")}
    envs = {n: cluster.ns_env(n) for n in ("rich", "dr-seeded")}
    listed = {n["name"]: n for n in json.loads(ok(cluster, "ns", "list", "--json").stdout)}
    dest = tmp_path / "dr"
    ok(cluster, "backup", "-o", str(dest), timeout=600)
    cluster.cluster.namespaces.close()
    ok(cluster, "down", "--purge")
    ok(cluster, "up", timeout=600)
    assert names(cluster) == []
    ok(cluster, "restore", str(dest), timeout=600)
    after = {n: sums(cluster, n) for n in ("rich", "dr-seeded")}
    assert after == before
    again = {n["name"]: n for n in json.loads(ok(cluster, "ns", "list", "--json").stdout)}
    for name in ("rich", "dr-seeded"):
        assert again[name]["labels"] == listed[name]["labels"]
        assert again[name]["max_connections"] == listed[name]["max_connections"]
        assert (again[name]["expires_at"] is None) == (listed[name]["expires_at"] is None)
        if listed[name]["expires_at"]:
            assert abs(again[name]["expires_at"] - listed[name]["expires_at"]) < 120
        assert cluster.ns_env(name) == envs[name]  # the same credentials and endpoints
    # the OLD credentials work in every service, with real clients
    assert read_all(envs["rich"]) == content
    c = clients(envs["dr-seeded"])
    assert c["pg"].execute("SELECT count(*) FROM customers WHERE email = 'later@x'").fetchone() == (1,)
    assert c["mongo"].reviews.count_documents({"sku": "NEW-1"}) == 1
    assert c["redis"].zscore("dr-seeded:bestsellers", "TEA-3") == 42.0
    assert c["ddb"].list_tables()["TableNames"] == ["carts"]
    assert "dr-seeded-assets" in {b["Name"] for b in c["s3"].list_buckets()["Buckets"]}
    # and the registry's tokens: the old token authenticates against the restored cluster
    remote = {"LOCALDEV_URL": f"https://127.0.0.1:{cluster.listen_port}", "LOCALDEV_TOKEN": token,
              "LOCALDEV_CA": str(cluster.home / "tls" / "ca.pem"), "LOCALDEV_HOME": str(tmp_path / "x"),
              "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    listed_remote = cluster.cli("ns", "list", "--json", env=remote)
    assert listed_remote.returncode == 0, listed_remote.stderr
    assert {"rich", "dr-seeded"} <= {n["name"] for n in json.loads(listed_remote.stdout)}
