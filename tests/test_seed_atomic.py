"""`localdev seed NAME` is all-or-nothing across services: whichever service fails, and when (PostgreSQL at
once, PostgreSQL at commit after the others wrote, DynamoDB midway, Mongo last), every service's data is
afterwards exactly what it was before, read back with each service's own client."""

import json

import boto3
import psycopg
import pymongo
import pytest

SCHEMA = ("create table if not exists parent (id int primary key);\n"
          "create table if not exists child (pid int references parent (id) deferrable initially deferred);\n"
          "insert into parent values (1) on conflict do nothing;\n")
CARTS_TABLE = {"AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
               "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}]}

BEFORE = {
    "postgres/001.sql": SCHEMA,
    "dynamodb/carts.json": {"table": CARTS_TABLE, "items": [{"pk": "a", "n": 1}, {"pk": "b", "n": 2}]},
    "mongo/reviews.json": [{"_id": 1, "stars": 5}, {"_id": 2, "stars": 4}],
    "mongo/reviews.indexes.json": [{"key": {"stars": 1}, "name": "by_stars"}],
    "aws/s3/docs/readme.txt": "v1",
    "aws/sqs.json": [{"name": "jobs"}],
}
# Valid, and touching everything: new rows, an overwritten and a new item, a new table, a new document,
# index and collection in Mongo, an overwritten and a new object, a new bucket and a new queue.
AGAIN = {
    "postgres/001.sql": SCHEMA + "insert into parent values (2);\n",
    "dynamodb/carts.json": {"table": CARTS_TABLE, "items": [{"pk": "a", "n": 100}, {"pk": "c", "n": 3}]},
    "dynamodb/extra.json": {"table": CARTS_TABLE, "items": [{"pk": f"e{i}"} for i in range(60)]},
    "mongo/reviews.json": [{"_id": 3, "stars": 1}],
    "mongo/reviews.indexes.json": [{"key": {"stars": 1}, "name": "by_stars"}, {"key": {"n": 1}, "name": "by_n"}],
    "mongo/notes.json": [{"text": "a new collection"}],
    "aws/s3/docs/readme.txt": "v2",
    "aws/s3/docs/new.txt": "new",
    "aws/s3/more/x.txt": "a new bucket",
    "aws/sqs.json": [{"name": "jobs"}, {"name": "new-queue"}],
}
FAILURES = {
    "postgres at once": ({"postgres/001.sql": AGAIN["postgres/001.sql"] + "insert into nowhere values (1);\n"},
                         "001.sql:5: relation \"nowhere\" does not exist"),
    "postgres at commit, after every other service wrote": (
        {"postgres/001.sql": AGAIN["postgres/001.sql"] + "insert into child values (99);\n"},
        "postgres: at commit: insert or update on table \"child\" violates foreign key constraint"),
    "dynamodb midway, after postgres": (
        {"dynamodb/carts.json": {"table": CARTS_TABLE, "items": [{"pk": f"k{i}"} for i in range(80)]
                                 + [{"pk": "a", "n": 100}, {"pk": "too-big", "blob": "x" * 500_000}]}},
        "carts.json: "),
    "mongo, the last service": ({"mongo/reviews.json": [{"_id": 3, "stars": 1}, {"_id": 1, "stars": 2}]},
                                "seeding mongo collection 'reviews' failed"),
}


def write_seeds(root, files: dict):
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    return root


def snapshot(env: dict) -> dict:
    """Everything the namespace holds in each service, as its own clients see it."""
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        tables = [r[0] for r in conn.execute("select tablename from pg_tables where schemaname = 'public' order by 1")]
        pg = {t: conn.execute(f"select * from {t} order by 1").fetchall() for t in tables}
    session = boto3.session.Session(aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                    aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_REGION"])
    ddb = session.client("dynamodb", endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"])
    dynamodb = {t: sorted(json.dumps(item, sort_keys=True) for page in ddb.get_paginator("scan").paginate(TableName=t)
                          for item in page["Items"])
                for t in ddb.list_tables()["TableNames"]}
    with pymongo.MongoClient(env["MONGODB_URI"]) as client:
        db = client.get_default_database()
        mongo = {c: (list(db[c].find({}, sort=[("_id", 1)])), sorted(ix["name"] for ix in db[c].list_indexes()))
                 for c in sorted(db.list_collection_names())}
    s3, sqs = (session.client(s, endpoint_url=env["AWS_ENDPOINT_URL"]) for s in ("s3", "sqs"))
    buckets = {b["Name"]: sorted((o["Key"], s3.get_object(Bucket=b["Name"], Key=o["Key"])["Body"].read())
                                 for o in s3.list_objects_v2(Bucket=b["Name"]).get("Contents", []))
               for b in s3.list_buckets()["Buckets"]}
    queues = sorted(u.rsplit("/", 1)[1] for u in sqs.list_queues().get("QueueUrls", []))
    return {"postgres": pg, "dynamodb": dynamodb, "mongo": mongo, "s3": buckets, "sqs": queues}


@pytest.fixture
def seeded(full_cluster, tmp_path):
    """A namespace seeded with BEFORE, and its snapshot."""
    h = full_cluster
    h.cli("ns", "create", "atomic", "--seeds", str(write_seeds(tmp_path / "before", BEFORE)), check=True)
    env = h.ns_env("atomic")
    yield h, env, snapshot(env)
    h.cli("ns", "delete", "atomic", check=True)


@pytest.mark.parametrize("case", FAILURES)
def test_a_failed_seed_leaves_every_service_as_it_was(seeded, tmp_path, case):
    h, env, before = seeded
    change, message = FAILURES[case]
    seeds = write_seeds(tmp_path / "again", {**AGAIN, **change})
    proc = h.cli("seed", "atomic", "--seeds", str(seeds))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert snapshot(env) == before


def test_the_same_seeds_without_the_failure_change_every_service(seeded, tmp_path):
    """The control for the test above: AGAIN does change each thing that test finds unchanged."""
    h, env, before = seeded
    h.cli("seed", "atomic", "--seeds", str(write_seeds(tmp_path / "again", AGAIN)), check=True)
    after = snapshot(env)
    assert after["postgres"]["parent"] == [(1,), (2,)]
    carts = [json.loads(i) for i in after["dynamodb"]["carts"]]
    assert sorted((i["pk"]["S"], i.get("n", {}).get("N")) for i in carts) == [("a", "100"), ("b", "2"), ("c", "3")]
    assert len(after["dynamodb"]["extra"]) == 60
    assert [d["_id"] for d in after["mongo"]["reviews"][0]] == [1, 2, 3]
    assert after["mongo"]["reviews"][1] == ["_id_", "by_n", "by_stars"] and "notes" in after["mongo"]
    assert after["s3"]["atomic-docs"] == [("new.txt", b"new"), ("readme.txt", b"v2")] and "atomic-more" in after["s3"]
    assert after["sqs"] == ["jobs", "new-queue"]
    assert before["s3"]["atomic-docs"] == [("readme.txt", b"v1")] and before["sqs"] == ["jobs"]
