"""Bulk writes into DynamoDB Local with SQLite's syncs on (its default) and off (localdev's launcher), side by
side in one run: N items written by the seed loader's lanes of BatchWriteItem into one namespace's table,
on a fresh postgres + dynamodb cluster each, with the wall time and the JVM's CPU (user + system).

    python bench/dynamodb_sqlite.py [--items 5000] [--rounds 2] [--out dynamodb_sqlite]
"""

from __future__ import annotations

import argparse
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import save, temp_project  # noqa: E402

VARIANTS = {"syncs on (SQLite's default)": (), "syncs off (localdev)": ("synchronous=OFF",)}


def one_run(items: int, pragmas: tuple[str, ...]) -> dict:
    import boto3
    import psutil
    from boto3.dynamodb.types import TypeSerializer

    from localdev.cluster import Cluster
    from localdev.config import load
    from localdev.services.dynamodb import install
    from localdev.services.dynamodb.seeds import _identity, _in_lanes, _write

    argv = install.Install.argv
    install.Install.argv = lambda self, **kw: argv(self, **kw, pragmas=pragmas)  # type: ignore[method-assign]
    services = ["postgres", "dynamodb"]
    home, config, _ = temp_project(services, None)
    cluster = Cluster(home=home, config=load(start=config.parent, environ={}))
    cluster.up(services=services)
    try:
        cluster.namespaces.create("bulk")
        env = cluster.namespaces.env("bulk")
        client = boto3.client("dynamodb", endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"], region_name=env["AWS_REGION"],
                              aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
        client.create_table(TableName="bulk", BillingMode="PAY_PER_REQUEST",
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
        jvm = psutil.Process(cluster.runtime.state("dynamodb").pid)
        serialize = TypeSerializer().serialize
        rows = ({k: serialize(v) for k, v in {"pk": f"item-{i:06d}", "n": i, "price": Decimal(i) / 100,
                                                "note": "x" * 40}.items()} for i in range(items))
        cpu0, t0 = jvm.cpu_times(), time.perf_counter()
        _in_lanes(rows, lambda item: _identity(item, ["pk"]),
                  lambda batch: _write(client, "bulk", [{"PutRequest": {"Item": i}} for i in batch], "bench"))
        seconds, cpu1 = time.perf_counter() - t0, jvm.cpu_times()
        assert client.scan(TableName="bulk", Select="COUNT")["Count"] == items
        return {"seconds": round(seconds, 2), "items_per_s": round(items / seconds),
                "jvm_cpu_s": round(cpu1.user - cpu0.user + cpu1.system - cpu0.system, 2),
                "jvm_system_s": round(cpu1.system - cpu0.system, 2)}
    finally:
        cluster.down()
        install.Install.argv = argv  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default="dynamodb_sqlite")
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):  # alternating, so a slower minute of the machine hits both
        for name, pragmas in VARIANTS.items():
            runs[name].append(one_run(args.items, pragmas))
    best = {name: min(r["seconds"] for r in rs) for name, rs in runs.items()}
    for name, rs in runs.items():
        print(f"{name:30} " + "  ".join(f"{r['seconds']:6.2f} s ({r['items_per_s']} items/s, JVM CPU {r['jvm_cpu_s']} s, "
                                         f"system {r['jvm_system_s']} s)" for r in rs))
    on, off = best.values()
    print(f"syncs on / off (best of {args.rounds}): {on / off:.2f}x")
    save(args.out, {"items": args.items, "runs": runs, "ratio_on_over_off": round(on / off, 2)})


if __name__ == "__main__":
    main()
