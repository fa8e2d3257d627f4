"""Soak: N seeded create + delete cycles through the agent, sampling every process of the cluster.

    python bench/soak.py [--cycles 1000] [--every 10] [--services postgres,dynamodb,aws,mongo]
                         [--nofile 1024] [--out bench/results/soak.json] [--chart bench/results/soak.png]

Each sample has, per process tree (the agent, each service): open fds, threads, PSS and RSS (MB), the number
of processes; PostgreSQL's backends (rows of pg_stat_activity); and the disk used by each service's data.
A cluster that gives back everything a namespace took shows flat lines against cycles.
`--nofile` sets RLIMIT_NOFILE before `up`, inherited by the agent and every service (a laptop's 1024).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, save, temp_project  # noqa: E402

SEEDS = Path(__file__).parent.parent / "seeds"
GAUGES = ("fds", "threads", "pss_mb", "rss_mb", "procs")


def tree_gauges(pid: int) -> dict[str, float]:
    """fds, threads, PSS, RSS and process count of `pid` and its descendants (postgres backends, ...)."""
    import psutil

    root = psutil.Process(pid)
    procs = [root, *root.children(recursive=True)]
    out = dict.fromkeys(GAUGES, 0.0)
    for proc in procs:
        try:
            with proc.oneshot():
                out["fds"] += proc.num_fds()
                out["threads"] += proc.num_threads()
                mem = proc.memory_full_info()
                out["pss_mb"] += getattr(mem, "pss", mem.rss) / 2**20  # PSS where the OS has it (Linux)
                out["rss_mb"] += mem.rss / 2**20
                out["procs"] += 1
        except psutil.NoSuchProcess:
            continue
    return {k: round(v, 2) for k, v in out.items()}


def disk_mb(path: Path) -> float:
    total = 0
    for dirpath, _, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except OSError:
                continue
    return round(total / 2**20, 2)


def sample(cluster, names: list[str]) -> dict:
    """One reading of every gauge of the native cluster."""
    out: dict = {}
    for name in ["agent", *names]:
        try:
            pid = json.loads((cluster.state.run(name) / "pid").read_text())["pid"]
        except (OSError, ValueError, KeyError):
            continue
        out[name] = tree_gauges(pid)
        if name != "agent":
            out[name]["disk_mb"] = disk_mb(cluster.state.data(name))
    if "postgres" in out:
        with cluster.services["postgres"].connect() as conn:
            out["postgres"]["backends"] = conn.execute("select count(*) from pg_stat_activity "
                                                       "where backend_type = 'client backend'").fetchone()[0]
    return out


def soak(cluster, cycles: int, every: int, seeds: Path = SEEDS, on_sample=None) -> list[dict]:
    """`cycles` seeded create + delete cycles through the cluster's agent; a sample before the first and
    after every `every`-th cycle."""
    from localdev.agent_client import AgentClient

    names = [n for n in cluster.services]
    client = AgentClient(cluster.state.home)
    samples = [{"cycle": 0, "t": 0.0, **sample(cluster, names)}]
    t0 = time.perf_counter()
    for i in range(1, cycles + 1):
        name = f"soak-{i}"
        client.create(name, seed=True, seeds_dir=seeds)
        client.delete(name)
        if i % every == 0 or i == cycles:
            samples.append({"cycle": i, "t": round(time.perf_counter() - t0, 2), **sample(cluster, names)})
            if on_sample:
                on_sample(samples[-1])
    return samples


def series(samples: list[dict]) -> dict[str, list[float]]:
    """'process.gauge' -> values, in sample order."""
    out: dict[str, list[float]] = {}
    for s in samples:
        for proc, gauges in s.items():
            if isinstance(gauges, dict):
                for gauge, value in gauges.items():
                    out.setdefault(f"{proc}.{gauge}", []).append(value)
    return out


def chart(samples: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = series(samples)
    cycles = [s["cycle"] for s in samples]
    gauges = sorted({k.split(".", 1)[1] for k in data})
    fig, axes = plt.subplots(len(gauges), 1, figsize=(9, 2.4 * len(gauges)), sharex=True)
    for ax, gauge in zip(axes, gauges, strict=True):
        for key, values in sorted(data.items()):
            if key.endswith("." + gauge):
                ax.plot(cycles, values, marker=".", label=key.split(".", 1)[0])
        ax.set_ylabel(gauge)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", ncol=5)
    axes[-1].set_xlabel("create + delete cycles")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def set_nofile(limit: int) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard if hard == resource.RLIM_INFINITY else max(hard, limit)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--every", type=int, default=10, help="sample after every N cycles")
    parser.add_argument("--services", default="postgres,dynamodb,aws,mongo")
    parser.add_argument("--nofile", type=int, default=1024, help="RLIMIT_NOFILE of the cluster's processes")
    parser.add_argument("--out", type=Path, default=RESULTS / "soak.json")
    parser.add_argument("--chart", type=Path, default=RESULTS / "soak.png")
    args = parser.parse_args()

    from localdev.cluster import Cluster
    from localdev.config import load as load_config

    set_nofile(args.nofile)
    services = args.services.split(",")
    home, config, _ = temp_project(services)
    cluster = Cluster(home=home, config=load_config(start=config.parent, environ={"LOCALDEV_CONFIG": str(config)}))
    cluster.up(services=services)
    try:
        samples = soak(cluster, args.cycles, args.every,
                       on_sample=lambda s: print(json.dumps({"cycle": s["cycle"], "t": s["t"],
                                                             **{p: g for p, g in s.items() if isinstance(g, dict)}}),
                                                 flush=True))
    finally:
        cluster.namespaces.close()
        cluster.down(purge=True)
    data = {"cycles": args.cycles, "services": services, "nofile": args.nofile, "samples": samples}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out == RESULTS / "soak.json":
        save("soak", data)
    else:
        args.out.write_text(json.dumps(data, indent=2))
    chart(samples, args.chart)
    print(f"wrote {args.out} and {args.chart}")


if __name__ == "__main__":
    main()
