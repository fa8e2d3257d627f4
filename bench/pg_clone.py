"""CREATE DATABASE from a seeded template, both strategies side by side on one native PostgreSQL (fsync off, as
localdev runs it): wall time and the CPU of the backend that runs it (WAL_LOG writes every page to the WAL;
FILE_COPY copies the files and forces two checkpoints, done by the checkpointer, counted under "others").

    python bench/pg_clone.py [--rounds 5] [--clones 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import LOCALDEV, save, summary, temp_project  # noqa: E402

SEEDS = str(Path(__file__).parent.parent / "seeds")
STRATEGIES = ("WAL_LOG", "FILE_COPY")


def main() -> None:
    import subprocess

    import psutil

    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clones", type=int, default=8)
    args = parser.parse_args()
    home, config, env = temp_project(["postgres"])
    subprocess.run([LOCALDEV, "up"], env=env, check=True, capture_output=True)
    try:
        subprocess.run([LOCALDEV, "ns", "create", "tpl", "--seeds", SEEDS], env=env, check=True, capture_output=True)
        os.environ.update(env)
        from localdev.cluster import Cluster

        pg = Cluster().services["postgres"]
        with pg.connect() as conn:
            template = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'localdev\\_tpl\\_%'"
                                    ).fetchone()[0]
            size = conn.execute("SELECT pg_database_size(%s)", (template,)).fetchone()[0]
            backend = psutil.Process(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
            server = psutil.Process(backend.ppid())

            def cpu(p) -> float:
                t = p.cpu_times()
                return t.user + t.system

            def others() -> float:
                return sum(cpu(c) for c in server.children() if c.pid != backend.pid)

            walls: dict[str, list[float]] = {s: [] for s in STRATEGIES}
            cpus: dict[str, list[float]] = {s: [] for s in STRATEGIES}
            rest: dict[str, list[float]] = {s: [] for s in STRATEGIES}
            for _ in range(args.rounds):  # alternate, so drift falls on both alike
                for strategy in STRATEGIES:
                    c0, o0, t0 = cpu(backend), others(), time.perf_counter()
                    for i in range(args.clones):
                        conn.execute(f'CREATE DATABASE "bench_{strategy}_{i}" TEMPLATE "{template}" '
                                     f"STRATEGY {strategy}")
                    n = args.clones
                    walls[strategy].append((time.perf_counter() - t0) / n)
                    cpus[strategy].append((cpu(backend) - c0) / n)
                    rest[strategy].append((others() - o0) / n)
                    for i in range(args.clones):
                        conn.execute(f'DROP DATABASE "bench_{strategy}_{i}"')
        result = {"template_mb": size / 1e6, "rounds": args.rounds, "clones": args.clones,
                  **{s: {"wall": summary(walls[s]), "backend_cpu": summary(cpus[s]), "others_cpu": summary(rest[s])}
                     for s in STRATEGIES}}
        print(f"CREATE DATABASE from a {size / 1e6:.1f} MB template, per clone (p50 of {args.rounds} rounds):")
        ms = {s: {k: result[s][k]["p50"] * 1000 for k in ("wall", "backend_cpu", "others_cpu")} for s in STRATEGIES}
        for s in STRATEGIES:
            print(f"  {s:9s}  wall {ms[s]['wall']:6.1f} ms  backend CPU {ms[s]['backend_cpu']:6.1f} ms  "
                  f"others' CPU {ms[s]['others_cpu']:5.1f} ms")
        w, f = ms["WAL_LOG"], ms["FILE_COPY"]
        print(f"  WAL_LOG / FILE_COPY: wall {w['wall'] / f['wall']:.2f}x, CPU "
              f"{(w['backend_cpu'] + w['others_cpu']) / (f['backend_cpu'] + f['others_cpu']):.2f}x")
        print(f"wrote {save('pg_clone', result)}")
    finally:
        subprocess.run([LOCALDEV, "down", "--purge"], env=env, capture_output=True)


if __name__ == "__main__":
    main()
