"""DynamoDB Local: cold start and memory with localdev's flags against the default ones.

Run:  python bench/dynamodb_start.py [--reps 5] [--port 21100] [--namespaces 50]

Every variant runs through localdev's loopback launcher (so nothing listens beyond 127.0.0.1);
the launcher adds no classes of its own worth measuring, so "default" is what `java -jar
DynamoDBLocal.jar` costs. The variants run interleaved, repetition by repetition, so a busy
machine slows them alike. "Start" is from spawning the JVM to the first ListTables answered
(boto3, in this process); RSS is read from /proc after that ListTables and again after a small
workload (a table, 10 items, a query).

Variants: "default" (DynamoDB Local's defaults: C2 JIT, telemetry on), "no-telemetry",
"c1+no-telemetry" (-XX:TieredStopAtLevel=1 too) and "localdev (+cds)" (plus the AppCDS archive:
what localdev runs).

Then, with localdev's flags: RSS, threads and disk of one server with 1 access key (one table
each) against the same with N more keys, i.e. the cost of a namespace.

Prints a table and writes bench/results/dynamodb_start.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402

from localdev.services.dynamodb import install as provision  # noqa: E402

VARIANTS = {
    # name: Install.argv switches. "default" is DynamoDB Local's own defaults; "localdev" what we run.
    "default": {"c1_only": False, "telemetry": True, "cds": False},
    "no-telemetry": {"c1_only": False, "telemetry": False, "cds": False},
    "c1+no-telemetry": {"c1_only": True, "telemetry": False, "cds": False},
    "localdev (+cds)": {"c1_only": True, "telemetry": False, "cds": True},
}
PROBE = Config(connect_timeout=0.5, read_timeout=3, retries={"max_attempts": 1})
SESSION = boto3.session.Session()


def client(port: int, key: str):
    return SESSION.client("dynamodb", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                          aws_access_key_id=key, aws_secret_access_key="x", config=PROBE)


def proc_status(pid: int) -> dict:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "Threads"):
            out[key] = int(value.split()[0])
    return {"rss_mb": out["VmRSS"] / 1024, "threads": out["Threads"]}


class Server:
    def __init__(self, install, port: int, **switches):
        self.db = Path(tempfile.mkdtemp(prefix="ddb-bench-"))
        self.port = port
        self.argv = install.argv(port=port, db_path=self.db, **switches)
        self.proc = None

    def start(self) -> float:
        probe = client(self.port, "000000000001")
        t0 = time.perf_counter()
        # cwd: with telemetry on, DynamoDB Local writes dynamodb-local-metadata.json in its working directory.
        self.proc = subprocess.Popen(self.argv, cwd=self.db, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while True:
            try:
                probe.list_tables()
                return time.perf_counter() - t0
            except Exception:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited: {self.proc.stderr.read().decode()[-800:]}")
                if time.perf_counter() - t0 > 60:
                    raise RuntimeError("not ready after 60 s")
                time.sleep(0.02)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.db, ignore_errors=True)

    def disk_kb(self) -> float:
        return sum(p.stat().st_size for p in self.db.iterdir()) / 1024


def workload(port: int, key: str, table: str = "bench") -> None:
    c = client(port, key)
    c.create_table(TableName=table, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                   AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                   BillingMode="PAY_PER_REQUEST")
    for i in range(10):
        c.put_item(TableName=table, Item={"pk": {"S": f"k{i}"}, "v": {"N": str(i)}})
    c.query(TableName=table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "k1"}})


def bench_start(install, port: int, reps: int) -> dict:
    runs = {name: [] for name in VARIANTS}
    for rep in range(reps):
        for name, switches in VARIANTS.items():
            server = Server(install, port, **switches)
            try:
                seconds = server.start()
                at_ready = proc_status(server.proc.pid)
                workload(port, "000000000001")
                after = proc_status(server.proc.pid)
                runs[name].append({"start_s": seconds, "rss_ready_mb": at_ready["rss_mb"],
                                   "rss_after_work_mb": after["rss_mb"], "threads": after["threads"]})
            finally:
                server.stop()
            r = runs[name][-1]
            print(f"  rep {rep + 1} {name:16} start {r['start_s']:.2f} s   RSS {r['rss_ready_mb']:.0f} MB "
                  f"-> {r['rss_after_work_mb']:.0f} MB after work", flush=True)
    summary = {}
    for name, rows in runs.items():
        summary[name] = {key: {"median": statistics.median(r[key] for r in rows),
                               "min": min(r[key] for r in rows), "max": max(r[key] for r in rows)}
                         for key in ("start_s", "rss_ready_mb", "rss_after_work_mb")}
    base = summary["default"]
    ratios = {name: {key: s[key]["median"] / base[key]["median"] for key in s}
              for name, s in summary.items() if name != "default"}
    return {"runs": runs, "summary": summary, "ratio_to_default": ratios}


def bench_namespaces(install, port: int, count: int) -> dict:
    server = Server(install, port, **VARIANTS["localdev (+cds)"])
    try:
        server.start()
        workload(port, "100000000000")
        time.sleep(1)
        before, disk_before = proc_status(server.proc.pid), server.disk_kb()
        t0 = time.perf_counter()
        for i in range(count):
            workload(port, str(200000000000 + i))
        create_s = time.perf_counter() - t0
        time.sleep(1)
        after, disk_after = proc_status(server.proc.pid), server.disk_kb()
        probe = client(port, "100000000000")
        lat = []
        for _ in range(20):
            t = time.perf_counter()
            probe.list_tables()
            lat.append((time.perf_counter() - t) * 1000)
    finally:
        server.stop()
    return {
        "namespaces": count,
        "rss_mb": {"one_key": before["rss_mb"], f"plus_{count}_keys": after["rss_mb"]},
        "threads": {"one_key": before["threads"], f"plus_{count}_keys": after["threads"]},
        "per_namespace": {"rss_mb": (after["rss_mb"] - before["rss_mb"]) / count,
                          "threads": (after["threads"] - before["threads"]) / count,
                          "disk_kb": (disk_after - disk_before) / count,
                          "create_table_and_10_items_ms": create_s * 1000 / count},
        "list_tables_ms_median_with_all_present": statistics.median(lat),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--port", type=int, default=21100)
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "dynamodb_start.json"))
    args = parser.parse_args()

    install = provision.provision()
    print(f"DynamoDB Local {provision.VERSION}, Java {install.java.version}, {os.cpu_count()} CPUs, "
          f"{args.reps} repetitions, port {args.port}")
    start = bench_start(install, args.port, args.reps)
    print("\nmedian (min-max)            start s               RSS at ready MB      RSS after work MB")
    for name, s in start["summary"].items():
        cells = [f"{s[k]['median']:6.2f} ({s[k]['min']:.2f}-{s[k]['max']:.2f})" if k == "start_s" else
                 f"{s[k]['median']:6.0f} ({s[k]['min']:.0f}-{s[k]['max']:.0f})"
                 for k in ("start_s", "rss_ready_mb", "rss_after_work_mb")]
        print(f"  {name:16} " + "   ".join(f"{c:20}" for c in cells))
    for name, r in start["ratio_to_default"].items():
        print(f"  {name} / default: start x{r['start_s']:.2f}, RSS at ready x{r['rss_ready_mb']:.2f}, "
              f"RSS after work x{r['rss_after_work_mb']:.2f}")

    print(f"\nper namespace ({args.namespaces} access keys, one table + 10 items each, localdev's flags):", flush=True)
    ns = bench_namespaces(install, args.port, args.namespaces)
    p = ns["per_namespace"]
    print(f"  RSS {ns['rss_mb']['one_key']:.0f} MB -> {list(ns['rss_mb'].values())[1]:.0f} MB: "
          f"+{p['rss_mb']:.2f} MB, +{p['threads']:.1f} threads, +{p['disk_kb']:.0f} KB disk per namespace; "
          f"create {p['create_table_and_10_items_ms']:.0f} ms; ListTables {ns['list_tables_ms_median_with_all_present']:.1f} ms")

    result = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": platform.platform(),
              "cpus": os.cpu_count(), "java": install.java.banner.splitlines()[0],
              "dynamodb_local": provision.VERSION, "reps": args.reps, "start": start, "namespaces": ns}
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
