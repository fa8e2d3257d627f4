"""Scale: many seeded namespaces made by concurrent creators on one native cluster, then what a user waits
for with them present. One run prints everything side by side:

- creating N seeded namespaces with C creators at once: failures (must be 0), wall time, create p50/p95;
- the whole cluster's PSS (every process tree, the agent's included) before, at its peak while the
  creators work, and after, so PSS per namespace = (after - before) / N;
- with the N present, twice (right after the creates, and `--settle` seconds later, once DynamoDB Local has
  closed the databases nobody uses): each process's idle CPU, the cluster's PSS, `ns create --print-env
  shell` seeded from the CLI (what a CI job runs) p50/p95, each process's CPU per such create and its
  delete, and `ns list` p50.

    python bench/scale.py [--namespaces 500] [--creators 8] [--probes 20] [--settle 70]
                          [--services postgres,dynamodb,aws,mongo] [--aws-flavor localstack]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import LOCALDEV, cli, cluster_pids, cluster_pss_mb, cpu_seconds, save, summary, temp_project  # noqa: E402

from localdev.services.dynamodb import install as provisioning  # noqa: E402

SEEDS = Path(__file__).parent.parent / "seeds"


class PeakPss:
    """The cluster's total PSS, sampled every `every` seconds in a thread; the highest seen."""

    def __init__(self, home: Path, names: list[str], every: float = 1.0):
        self.home, self.names, self.every = home, names, every
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def total(self) -> float:
        return sum(cluster_pss_mb(self.home, ["agent", *self.names]).values())

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.total())
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def measure_present(home: Path, env: dict, client, services: list[str], tag: str, probes: int) -> dict:
    """With the namespaces present: each process's CPU over 10 idle seconds (% of one core), the cluster's
    PSS, timed seeded `ns create --print-env shell` (each deleted after) and `ns list`."""
    pids = cluster_pids(home, ["agent", *services])
    before = {name: cpu_seconds(p) for name, p in pids.items()}
    time.sleep(10)
    idle = {name: round((cpu_seconds(p) - before[name]) * 10, 1) for name, p in pids.items()}
    pss = sum(cluster_pss_mb(home, ["agent", *services]).values())
    times = []
    start = {name: cpu_seconds(p) for name, p in cluster_pids(home, ["agent", *services]).items()}
    for i in range(probes):
        t = time.perf_counter()
        subprocess.run([LOCALDEV, "ns", "create", f"probe-{tag}-{i}", "--seeds", str(SEEDS), "--print-env", "shell"],
                       env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
        client.delete(f"probe-{tag}-{i}")
    # (a process restarted meanwhile would show its new self's CPU: none is, in a clean run)
    cycle_cpu = {name: round((cpu_seconds(p) - start.get(name, 0.0)) / probes * 1000, 1)
                 for name, p in cluster_pids(home, ["agent", *services]).items()}
    listing = [cli(env, "ns", "list") for _ in range(5)]
    return {"idle_cpu_pct": idle, "pss_mb": round(pss, 1), "create_print_env": summary(times),
            "cpu_ms_per_create_delete": cycle_cpu, "ns_list": summary(listing)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--namespaces", type=int, default=500)
    parser.add_argument("--creators", type=int, default=8)
    parser.add_argument("--probes", type=int, default=20, help="timed CLI creates with the namespaces present")
    parser.add_argument("--services", default="postgres,dynamodb,aws,mongo")
    parser.add_argument("--aws-flavor", default="localstack")
    parser.add_argument("--settle", type=float, default=provisioning.IDLE_CLOSE_SECONDS + 10,
                        help="seconds to wait before the second measurement (DynamoDB Local closes idle databases)")
    args = parser.parse_args()
    services = args.services.split(",")

    from localdev.agent_client import AgentClient
    from localdev.cluster import Cluster
    from localdev.config import load

    home, config, env = temp_project(services, {"aws": {"flavor": args.aws_flavor}})
    cluster = Cluster(home=home, config=load(start=config.parent, environ={"LOCALDEV_CONFIG": str(config)}))
    cluster.up(services=services)
    try:
        client = AgentClient(home)
        client.create("warm-up", seed=True, seeds_dir=SEEDS)  # the first seeded create builds what later ones reuse
        client.delete("warm-up")
        time.sleep(2)
        pss = PeakPss(home, services)
        before = pss.total()
        failures: list[str] = []
        times: list[float] = []

        def create(i: int) -> None:
            t0 = time.perf_counter()
            try:
                client.create(f"scale-{i}", seed=True, seeds_dir=SEEDS)
                times.append(time.perf_counter() - t0)
            except Exception as exc:  # counted and shown: the figure that must be 0
                failures.append(f"scale-{i}: {exc}")

        t0 = time.perf_counter()
        with pss, ThreadPoolExecutor(max_workers=args.creators) as pool:
            list(pool.map(create, range(args.namespaces)))
        wall = time.perf_counter() - t0
        time.sleep(5)  # let pools and caches settle to their steady state
        after = pss.total()

        # Twice: right after the creates (every namespace's DynamoDB database still open), then once DynamoDB
        # Local has closed the idle ones, as in a cluster that has lived with them for a while.
        fresh = measure_present(home, env, client, services, "fresh", args.probes)
        time.sleep(args.settle)
        settled = measure_present(home, env, client, services, "settled", args.probes)
    finally:
        cluster.namespaces.close()
        cluster.down(purge=True)

    made = max(1, args.namespaces - len(failures))
    per_ns = (after - before) / made
    result = {
        "services": services, "aws_flavor": args.aws_flavor, "namespaces": args.namespaces,
        "creators": args.creators, "failures": len(failures), "failure_samples": failures[:5],
        "create_wall_s": round(wall, 2), "create": summary(times) if times else None,
        "pss_mb": {"before": round(before, 1), "peak": round(pss.peak, 1), "after": round(after, 1),
                   "per_namespace": round(per_ns, 2)},
        "present": {"fresh": fresh, "settled": settled}, "settle_s": args.settle,
    }
    result["pss_mb"]["per_namespace_settled"] = round((settled["pss_mb"] - before) / made, 2)
    print(f"{args.namespaces} seeded namespaces by {args.creators} creators: {len(failures)} failures, "
          f"{wall:.1f} s, create p50 {result['create']['p50'] * 1000:.0f} ms p95 "
          f"{result['create']['p95'] * 1000:.0f} ms" if times else "no create succeeded")
    print(f"PSS before {before:.0f} MB, peak {pss.peak:.0f} MB, after {after:.0f} MB: {per_ns:.2f} MB per namespace")
    for when, seen in (("fresh", fresh), ("settled", settled)):
        probe, listed = seen["create_print_env"], seen["ns_list"]
        print(f"with them present ({when}): ns create --print-env shell (CLI, seeded) p50 {probe['p50'] * 1000:.0f} ms "
              f"p95 {probe['p95'] * 1000:.0f} ms; ns list p50 {listed['p50'] * 1000:.0f} ms; idle CPU "
              f"{seen['idle_cpu_pct']}; PSS {seen['pss_mb']:.0f} MB; CPU ms per create + delete "
              f"{seen['cpu_ms_per_create_delete']}")
    print(f"wrote {save('scale', result)}")


if __name__ == "__main__":
    main()
