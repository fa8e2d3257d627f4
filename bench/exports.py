"""Export and import throughput per service (MB/s of the seeds files each writes and reads), side by side,
and the peak memory of the CLI and of the agent while `localdev ns export` / `ns import` move a namespace
of 50 000 DynamoDB items + 50 000 Mongo documents + 100 000 PostgreSQL rows + S3 objects + Redis keys.

Per service, in-process (the code the agent runs): the export is `Service.export_namespace` into a folder;
the import is the seeded create of that service's part alone (validation, then replay or template clone). End to end,
through the agent: the CLI's export to a .tar.zst and its import, with both processes' RSS sampled.

    python bench/exports.py [--items 50000] [--rows 100000] [--port-base 13100]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import LOCALDEV, save  # noqa: E402

SERVICES = ["postgres", "dynamodb", "aws", "mongo", "redis"]


def write_seeds(root: Path, items: int, rows: int, objects: int, keys: int) -> None:
    (root / "postgres").mkdir(parents=True)
    with open(root / "postgres" / "001.sql", "w") as fh:
        fh.write("CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, total numeric, note text);\n"
                 "COPY orders (id, customer, total, note) FROM stdin;\n")
        for i in range(rows):
            fh.write(f"{i}\tcustomer-{i % 997}\t{i / 100}\t{'n' * 40}\n")
        fh.write("\\.\n")
    (root / "dynamodb").mkdir()
    with open(root / "dynamodb" / "big.json", "w") as fh:
        fh.write('{"table": {"AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}], '
                 '"KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}]},\n "items": [\n')
        fh.write(",\n".join(json.dumps({"pk": f"item-{i:06d}", "n": i, "note": "x" * 40}) for i in range(items)))
        fh.write("\n]}\n")
    (root / "mongo").mkdir()
    with open(root / "mongo" / "big.json", "w") as fh:
        fh.write("[\n" + ",\n".join(json.dumps({"_id": i, "when": {"$date": "2026-01-02T00:00:00Z"}, "note": "x" * 40})
                                     for i in range(items)) + "\n]\n")
    bucket = root / "aws" / "s3" / "media"
    bucket.mkdir(parents=True)
    block = os.urandom(256 * 1024)
    for i in range(objects):
        (bucket / f"obj-{i:04d}.bin").write_bytes(block)
    (root / "aws" / "sqs.json").write_text('[{"name": "jobs"}]\n')
    (root / "redis").mkdir()
    with open(root / "redis" / "keys.json", "w") as fh:
        fh.write("[\n" + ",\n".join(json.dumps({"key": f"k:{i}", "type": "hash", "value": {"a": str(i), "b": "y" * 40}})
                                     for i in range(keys)) + "\n]\n")


def size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


class Peak(threading.Thread):
    """Samples a process's RSS (and, for one started here, its children's) every 20 ms until stopped."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        import psutil

        self.proc = psutil.Process(pid)
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except Exception:  # noqa: BLE001 - the process ended
                return
            time.sleep(0.02)

    def stop(self) -> dict:
        self.done.set()
        self.join()
        return {"base_mb": round(self.base / 2**20, 1), "peak_mb": round(self.peak / 2**20, 1),
                "growth_mb": round((self.peak - self.base) / 2**20, 1)}


def cli_with_peak(env: dict, agent_pid: int, *args: str) -> dict:
    import psutil

    agent = Peak(agent_pid)
    agent.start()
    t0 = time.perf_counter()
    proc = subprocess.Popen([LOCALDEV, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    cli_peak = 0
    ps = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            cli_peak = max(cli_peak, ps.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    seconds = time.perf_counter() - t0
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"localdev {' '.join(args)} failed: {err}")
    return {"seconds": round(seconds, 2), "cli_peak_rss_mb": round(cli_peak / 2**20, 1), "agent": agent.stop()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--objects", type=int, default=100, help="S3 objects of 256 KiB")
    parser.add_argument("--keys", type=int, default=20_000, help="Redis hashes")
    parser.add_argument("--port-base", type=int, default=0, help="ports from here (default: free ones)")
    parser.add_argument("--out", default="exports")
    args = parser.parse_args()

    from localdev.agent_client import AgentClient
    from localdev.cluster import Cluster
    from localdev.config import load
    from localdev.ports import free_port

    work = Path(tempfile.mkdtemp(prefix="localdev-bench-exports-"))
    lines = []
    for n, name in enumerate(SERVICES):
        lines += [f"[services.{name}]", f"port = {args.port_base + n if args.port_base else free_port()}"]
        if name == "aws":
            lines.append('flavor = "ministack"')
    lines += ["[agent]", "reap_interval = 3600"]
    config = work / "localdev.toml"
    config.write_text("\n".join(lines) + "\n")
    home = work / "home"
    env = {**os.environ, "LOCALDEV_HOME": str(home), "LOCALDEV_CONFIG": str(config)}
    seeds = work / "seeds"
    write_seeds(seeds, args.items, args.rows, args.objects, args.keys)
    cluster = Cluster(home=home, config=load(start=work, environ={}))
    cluster.up(services=SERVICES)
    try:
        agent = AgentClient(home, timeout=3600)
        agent_pid = agent.request("GET", "/health")["pid"]
        t0 = time.perf_counter()
        agent.create("src", ttl="none", seed=True, seeds_dir=seeds)
        seeded = time.perf_counter() - t0
        api = cluster.namespaces
        ns, _ = api.namespace_for_export("src")
        per_service = {}
        for name in SERVICES:
            svc = cluster.services[name]
            folder = work / "out" / name
            folder.mkdir(parents=True)
            t0 = time.perf_counter()
            summary = svc.export_namespace(ns, folder)
            exported = time.perf_counter() - t0
            t0 = time.perf_counter()
            svc.checksum(ns)
            checked = time.perf_counter() - t0
            # the import's work for this service: validate its files, then the seeded create (a replay, or
            # PostgreSQL's template clone), into a namespace that has nothing of it yet
            api.create(f"imp-{name}", ttl="none")
            target, _ = api.namespace_for_export(f"imp-{name}")
            svc.drop_namespace(target)
            t0 = time.perf_counter()
            svc.create_seeded(target, type(svc).load_fixtures(folder))
            imported = time.perf_counter() - t0
            mb = size_mb(folder)
            per_service[name] = {"counts": summary.counts, "mb": round(mb, 2),
                                 "export_s": round(exported, 2), "export_mb_s": round(mb / exported, 2),
                                 "import_s": round(imported, 2), "import_mb_s": round(mb / imported, 2),
                                 "checksum_s": round(checked, 2)}
            print(f"{name:9} {mb:8.1f} MB  export {mb / exported:7.1f} MB/s ({exported:6.1f} s)  "
                  f"import {mb / imported:7.1f} MB/s ({imported:6.1f} s)  checksum {checked:5.1f} s  {summary.counts}",
                  flush=True)
        archive = work / "src.tar.zst"
        end_to_end = {"export": cli_with_peak(env, agent_pid, "ns", "export", "src", "-o", str(archive)),
                      "archive_mb": round(archive.stat().st_size / 2**20, 2), "seeds_mb": round(size_mb(work / "out"), 2)}
        end_to_end["import"] = cli_with_peak(env, agent_pid, "ns", "import", str(archive), "--as", "copy")
        print(f"end to end: {json.dumps(end_to_end)}")
        print(f"(seeded create of the source by replay: {seeded:.1f} s)")
        path = save(args.out, {"items": args.items, "rows": args.rows, "objects_256k": args.objects,
                               "redis_keys": args.keys, "per_service": per_service, "end_to_end": end_to_end,
                               "source_seeded_create_s": round(seeded, 1)})
        print(f"saved {path}")
    finally:
        cluster.namespaces.close()
        cluster.down(purge=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
