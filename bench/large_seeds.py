"""Large JSON fixtures through the agent: seconds and the agent's peak memory growth, per service, beside
the fixture file's size (streamed seeds should grow the agent by about a batch, not by the file).

    python bench/large_seeds.py [--items 50000] [--out large_seeds]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import save, temp_project  # noqa: E402


def write_fixtures(root: Path, items: int) -> dict[str, Path]:
    ddb, mongo = root / "ddb" / "dynamodb" / "big.json", root / "mongo" / "mongo" / "big.json"
    ddb.parent.mkdir(parents=True)
    mongo.parent.mkdir(parents=True)
    with open(ddb, "w") as fh:
        fh.write('{"table": {"AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}], '
                 '"KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}]},\n "items": [\n')
        fh.write(",\n".join(json.dumps({"pk": f"item-{i:06d}", "n": i, "price": i / 100, "note": "x" * 40})
                            for i in range(items)))
        fh.write("\n]}\n")
    with open(mongo, "w") as fh:
        fh.write("[\n" + ",\n".join(json.dumps({"_id": i, "when": {"$date": "2026-01-02T00:00:00Z"}, "note": "x" * 40})
                                     for i in range(items)) + "\n]\n")
    return {"dynamodb": ddb, "mongo": mongo}


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--out", default="large_seeds")
    parser.add_argument("--services", default="postgres,dynamodb,mongo", help="which fixtures to load (postgres always runs)")
    parser.add_argument("--mongo-flavor", default="", help="[services.mongo] flavor (default: localdev's default)")
    args = parser.parse_args()

    from localdev.agent_client import AgentClient
    from localdev.cluster import Cluster
    from localdev.config import load

    services = sorted(set(["postgres", *args.services.split(",")]), key=["postgres", "dynamodb", "mongo"].index)
    work = Path(tempfile.mkdtemp(prefix="localdev-bench-seeds-"))
    files = {k: v for k, v in write_fixtures(work, args.items).items() if k in args.services.split(",")}
    home, config, _ = temp_project(services, {"mongo": {"flavor": args.mongo_flavor}} if args.mongo_flavor else None)
    cluster = Cluster(home=home, config=load(start=config.parent, environ={}))
    cluster.up(services=services)
    rows = {}
    try:
        agent = AgentClient(home, timeout=3600)
        agent_pid = agent.request("GET", "/health")["pid"]
        agent.create("warm", seed=True, seeds_dir=Path(__file__).parent.parent / "seeds")  # clients loaded
        for service, path in files.items():
            before = peak_rss_mb(agent_pid)
            reports = []
            t0 = time.perf_counter()
            agent.create(f"big-{service}", seed=True, seeds_dir=path.parent.parent,
                         on_progress=lambda s, m, f: reports.append(f))
            seconds = time.perf_counter() - t0
            rows[service] = {"items": args.items, "seconds": seconds, "per_second": args.items / seconds,
                             "file_mb": path.stat().st_size / 2**20, "agent_peak_growth_mb": peak_rss_mb(agent_pid) - before,
                             "progress_reports": len(reports)}
            agent.delete(f"big-{service}")
    finally:
        cluster.namespaces.close()
        cluster.down(purge=True)
        shutil.rmtree(home.parent, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'service':10} {'items':>7} {'seconds':>8} {'items/s':>8} {'file MB':>8} {'agent peak +MB':>15} {'reports':>8}")
    for service, r in rows.items():
        print(f"{service:10} {r['items']:>7} {r['seconds']:>8.1f} {r['per_second']:>8.0f} {r['file_mb']:>8.1f} "
              f"{r['agent_peak_growth_mb']:>15.1f} {r['progress_reports']:>8}")
    print(f"wrote {save(args.out, {'rows': rows, 'mongo_flavor': args.mongo_flavor or 'default'})}")


if __name__ == "__main__":
    main()
