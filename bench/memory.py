"""Memory of the shared cluster with 0, 10, 50 and 100 namespaces, against N private clusters.

    python bench/memory.py [--services postgres,dynamodb,aws,mongo] [--steps 0,10,50,100] [--private 2]

Memory is PSS (proportional set size) of every service's process tree plus the agent, so PostgreSQL's
shared buffers count once. Each namespace gets a little data in every service (the example seeds).
"Private clusters" are measured by starting real ones (--private of them, side by side) and scaling
the mean to N.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import cli, cluster_pss_mb, save, temp_project  # noqa: E402

SEEDS = Path(__file__).parent.parent / "seeds"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", default="postgres")
    parser.add_argument("--steps", default="0,10,50,100")
    parser.add_argument("--private", type=int, default=2)
    parser.add_argument("--mongo-flavor", default="", help="[services.mongo] flavor (default: localdev's default)")
    parser.add_argument("--out", default="memory")
    args = parser.parse_args()
    options = {"mongo": {"flavor": args.mongo_flavor}} if args.mongo_flavor else None
    services = args.services.split(",")
    steps = [int(s) for s in args.steps.split(",")]

    from localdev.cluster import Cluster

    home, _, env = temp_project(services, options)
    cli(env, "up")
    cluster = Cluster(home=home)
    shared: dict[int, dict] = {}
    try:
        made = 0
        for step in steps:
            while made < step:
                cluster.namespaces.create(f"m-{made}", seed=SEEDS.is_dir(), seeds_dir=SEEDS)
                made += 1
            time.sleep(2)  # let freshly touched pages settle
            shared[step] = cluster_pss_mb(home, [*services, "agent"])
            print(f"shared cluster, {step:>3} namespaces: {sum(shared[step].values()):8.1f} MB  "
                  + " ".join(f"{k}={v:.0f}" for k, v in shared[step].items()), flush=True)
    finally:
        cluster.namespaces.close()
        cli(env, "down", "--purge")
        shutil.rmtree(home.parent, ignore_errors=True)

    private_totals, homes = [], []
    try:
        for i in range(args.private):
            p_home, _, p_env = temp_project(services, options)
            homes.append((p_home, p_env))
            cli(p_env, "up")
            cli(p_env, "ns", "create", "pr", *(["--seeds", str(SEEDS)] if SEEDS.is_dir() else ["--no-seed"]))
        time.sleep(2)
        for p_home, _ in homes:
            private_totals.append(sum(cluster_pss_mb(p_home, [*services, "agent"]).values()))
    finally:
        for p_home, p_env in homes:
            cli(p_env, "down", "--purge")
            shutil.rmtree(p_home.parent, ignore_errors=True)
    one_private = sum(private_totals) / len(private_totals)
    base = sum(shared[steps[0]].values())
    top = steps[-1]
    per_ns = (sum(shared[top].values()) - base) / max(top - steps[0], 1)
    print(f"\none private cluster (+1 namespace): {one_private:.1f} MB (mean of {len(private_totals)} running side by side)")
    print(f"incremental memory per namespace on the shared cluster: {per_ns:.2f} MB")
    print(f"{'namespaces':>10} {'shared MB':>10} {'N private MB':>13} {'ratio':>7}")
    rows = []
    for step in steps:
        s_total = sum(shared[step].values())
        p_total = one_private * max(step, 1)
        rows.append({"namespaces": step, "shared_mb": s_total, "private_mb": p_total, "by_service": shared[step]})
        print(f"{step:>10} {s_total:>10.1f} {p_total:>13.1f} {p_total / s_total:>6.1f}x")
    print(f"wrote {save(args.out, {'services': services, 'mongo_flavor': args.mongo_flavor or 'default', 'rows': rows, 'per_namespace_mb': per_ns, 'one_private_mb': one_private})}")


if __name__ == "__main__":
    main()
