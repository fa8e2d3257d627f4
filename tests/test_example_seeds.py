"""The repo's example seeds (an orders domain) land in all four services, seeded or replayed alike."""

import json
from pathlib import Path

import boto3
import psycopg
import pymongo
import pytest

from localdev.services.mongo import META_DB


SEEDS = str(Path(__file__).parent.parent / "seeds")


@pytest.fixture
def full(full_cluster):
    return full_cluster


def snapshot(env: dict) -> dict:
    """Everything the example seeds put in the namespace, read back with each service's real client."""
    ns = env["LOCALDEV_NAMESPACE"]
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        pg = {t: conn.execute(f"select * from {t} order by 1, 2").fetchall()
              for t in ("customers", "products", "orders", "order_lines")}
        totals = conn.execute("select order_id, total_cents from order_totals order by 1").fetchall()
    session = boto3.session.Session(aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                    aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_REGION"])
    ddb = session.client("dynamodb", endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"])
    carts = sorted(ddb.scan(TableName="carts")["Items"], key=lambda i: (i["customer_id"]["N"], i["sku"]["S"]))
    by_sku = ddb.query(TableName="carts", IndexName="by_sku", KeyConditionExpression="sku = :s",
                       ExpressionAttributeValues={":s": {"S": "TEA-3"}})["Items"]
    s3 = session.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
    objects = {b: sorted((o["Key"], s3.get_object(Bucket=b, Key=o["Key"])["Body"].read().decode())
                         for o in s3.list_objects_v2(Bucket=b).get("Contents", []))
               for b in (f"{ns}-invoices", f"{ns}-assets")}
    sqs = session.client("sqs", endpoint_url=env["AWS_ENDPOINT_URL"])
    queues = sorted(u.rsplit("/", 1)[1] for u in sqs.list_queues().get("QueueUrls", []))
    with pymongo.MongoClient(env["MONGODB_URI"]) as client:
        db = client.get_default_database()
        reviews = list(db.reviews.find({}, sort=[("_id", 1)]))
        indexes = sorted(i["name"] for i in db.reviews.list_indexes())
    return {"pg": pg, "totals": totals, "carts": carts, "by_sku": len(by_sku), "objects": objects,
            "queues": queues, "reviews": reviews, "indexes": indexes}


def test_example_seeds_in_every_service_template_and_replay_alike(full):
    full.cli("ns", "create", "ex-a", "--seeds", SEEDS, check=True)
    full.cli("ns", "create", "ex-b", "--no-seed", check=True)
    full.cli("seed", "ex-b", "--seeds", SEEDS, check=True)
    a, b = snapshot(full.ns_env("ex-a")), snapshot(full.ns_env("ex-b"))

    assert len(a["pg"]["customers"]) == 3 and a["totals"] == [(1, 19900 + 2 * 899), (2, 3450), (3, 5 * 899)]
    assert len(a["carts"]) == 4 and a["by_sku"] == 2
    assert [k for k, _ in a["objects"]["ex-a-invoices"]] == ["2026/04/order-1.txt", "2026/04/order-3.txt"]
    assert a["queues"] == ["order-events", "order-events-dlq.fifo"]
    assert [r["stars"] for r in a["reviews"]] == [5, 4, 3]
    assert {"by_sku_newest", "one_review_per_customer_and_sku"} <= set(a["indexes"])

    # the same data, however it was seeded (bucket names carry the namespace)
    rename = json.loads(json.dumps(a["objects"], default=str).replace("ex-a-", "ex-b-"))
    assert json.loads(json.dumps(b["objects"], default=str)) == rename
    for key in ("pg", "totals", "carts", "by_sku", "queues", "reviews", "indexes"):
        assert a[key] == b[key], key
    for name in ("ex-a", "ex-b"):
        full.cli("ns", "delete", name, check=True)


def test_a_failure_in_one_service_leaves_no_namespace(full, tmp_path):
    """Valid files everywhere, but the Mongo part fails on the server (a unique index over duplicates):
    the create exits 2 and nothing of the namespace is left in any service."""
    import shutil

    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    reviews = json.loads((seeds / "mongo" / "reviews.json").read_text())
    reviews.append({**reviews[0], "_id": {"$oid": "6610a00000000000000000ff"}})  # same customer and sku
    (seeds / "mongo" / "reviews.json").write_text(json.dumps(reviews))
    proc = full.cli("ns", "create", "ex-fail", "--seeds", str(seeds))
    assert proc.returncode in (1, 2), proc.stderr
    assert "mongo" in proc.stderr
    assert "ex-fail" not in full.cli("ns", "list", "--json").stdout
    with psycopg.connect(full.cluster.services["postgres"].admin_url(), autocommit=True) as conn:
        assert not conn.execute("select 1 from pg_database where datname = 'ns_ex_fail'").fetchone()
        assert not conn.execute("select 1 from pg_roles where rolname = 'ns_ex_fail'").fetchone()
    # the Mongo side, wherever the cluster's flavor keeps a namespace
    mongo = full.cluster.services["mongo"]
    assert "ns_ex_fail" not in mongo.admin().list_database_names()
    if mongo.scram:  # mongo-java-server, mongodb: a SCRAM user of the namespace's database
        assert mongo.admin()["ns_ex_fail"].command("usersInfo")["users"] == []
    if mongo.on_postgres:  # FerretDB: a schema of the `ferretdb` PostgreSQL database
        with psycopg.connect(full.cluster.services["postgres"].admin_url(META_DB), autocommit=True) as conn:
            assert not conn.execute("select 1 from pg_namespace where nspname = 'ns_ex_fail'").fetchone()
    # buckets are global: another namespace sees 404 (absent), not 403 (someone else's)
    full.cli("ns", "create", "ex-probe", "--no-seed", check=True)
    env = full.ns_env("ex-probe")
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_REGION"])
    for bucket in ("ex-fail-invoices", "ex-fail-assets"):
        with pytest.raises(s3.exceptions.ClientError) as err:
            s3.head_bucket(Bucket=bucket)
        assert err.value.response["Error"]["Code"] in ("404", "NoSuchBucket")
    # DynamoDB Local: every database file with tables in it belongs to a live namespace
    live_keys = {full.cluster.namespaces.env(n["name"])["AWS_ACCESS_KEY_ID"] for n in full.cluster.namespaces.list()}
    data = full.cluster.services["dynamodb"].data_dir
    for db in data.glob("*.db"):
        key = db.name.split("_")[0]
        assert key in live_keys or key == "localdevprobe" or Path(str(db) + ".dropped").exists(), db
    full.cli("ns", "delete", "ex-probe", check=True)
