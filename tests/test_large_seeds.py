"""50k-item JSON fixtures seed through the agent, streamed, with progress reports (real services)."""

import json
import time

import boto3
import pymongo

from localdev.agent_client import AgentClient

COUNT = 50_000


def seed_through_agent(h, name: str, root) -> tuple[list, float]:
    seen = []
    started = time.monotonic()
    info = AgentClient(h.home).create(name, seed=True, seeds_dir=root, on_progress=lambda s, m, f: seen.append((m, f)))
    assert info["state"] == "ready" and info["seed_hash"]
    return seen, time.monotonic() - started


def assert_progress(seen: list, label: str, unit: str) -> None:
    ours = [(m, f) for m, f in seen if m.startswith(f"{label}: ")]
    fractions = [f for _, f in ours]
    assert len(ours) >= 5, ours
    assert fractions == sorted(fractions) and fractions[0] < 0.5 and fractions[-1] == 1.0
    assert ours[-1][0] == f"{label}: {COUNT}/{COUNT} {unit}"


def test_a_50k_item_dynamodb_table(full_cluster, tmp_path):
    root = tmp_path / "seeds"
    (root / "dynamodb").mkdir(parents=True)
    with open(root / "dynamodb" / "big.json", "w") as fh:
        fh.write('{"table": {"AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],\n'
                 ' "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}]},\n "items": [\n')
        fh.write(",\n".join(json.dumps({"pk": f"item-{i:06d}", "n": i, "price": i / 100, "tags": ["a", "b"]})
                            for i in range(COUNT)))
        fh.write("\n]}\n")
    seen, seconds = seed_through_agent(full_cluster, "big-ddb", root)
    print(f"\n{COUNT} dynamodb items seeded in {seconds:.1f}s")
    env = full_cluster.ns_env("big-ddb")
    session = boto3.session.Session(aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                    aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_REGION"])
    ddb = session.client("dynamodb", endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"])
    pages = ddb.get_paginator("scan").paginate(TableName="big", Select="COUNT")
    assert sum(page["Count"] for page in pages) == COUNT
    item = ddb.get_item(TableName="big", Key={"pk": {"S": "item-012345"}})["Item"]
    assert item["n"] == {"N": "12345"} and item["price"] == {"N": "123.45"}
    assert item["tags"] == {"L": [{"S": "a"}, {"S": "b"}]}
    assert_progress(seen, "dynamodb big", "items")
    full_cluster.cli("ns", "delete", "big-ddb", check=True)


def test_a_50k_document_mongo_collection(full_cluster, tmp_path):
    root = tmp_path / "seeds"
    (root / "mongo").mkdir(parents=True)
    with open(root / "mongo" / "big.json", "w") as fh:
        fh.write("[\n" + ",\n".join(json.dumps({"_id": i, "when": {"$date": "2026-01-02T00:00:00Z"}, "note": f"n{i}"})
                                     for i in range(COUNT)) + "\n]\n")
    seen, seconds = seed_through_agent(full_cluster, "big-mongo", root)
    print(f"\n{COUNT} mongo documents seeded in {seconds:.1f}s")
    with pymongo.MongoClient(full_cluster.ns_env("big-mongo")["MONGODB_URI"]) as client:
        big = client.get_default_database().big
        assert big.count_documents({}) == COUNT
        assert big.find_one({"_id": 4321})["when"].year == 2026
    assert_progress(seen, "mongo big", "documents")
    full_cluster.cli("ns", "delete", "big-mongo", check=True)
