"""Seeded creates from a snapshot vs by replay, and `ns reset`, side by side in one run (in-process API, one
cluster of every service, MiniStack for aws unless --aws-flavor says otherwise):

- the example seeds (seeds/): create by replay (`[namespaces] seed_snapshots = false`) vs a copy of the
  seed snapshot the first create made, then delete; `ns reset` of an example namespace (API and CLI);
- large seeds: 50 000 DynamoDB items + 50 000 Mongo documents + 100 000 PostgreSQL rows: the first create
  (replay, then its seed snapshot), and the next creates (copies), with each service's copy time.

    python bench/snapshots.py [--rounds 10] [--items 50000] [--rows 100000] [--no-large] [--out snapshots]
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
from _common import LOCALDEV, save, summary, temp_project  # noqa: E402
from large_seeds import write_fixtures  # noqa: E402

EXAMPLE = Path(__file__).parent.parent / "seeds"


def large_seeds(root: Path, items: int, rows: int) -> Path:
    """One seeds/ tree: bench/large_seeds.py's DynamoDB and Mongo files, and a PostgreSQL COPY of `rows` rows."""
    seeds = root / "large-seeds"
    made = write_fixtures(root / "parts", items)
    for service, path in made.items():
        (seeds / service).mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), seeds / service / path.name)
    (seeds / "postgres").mkdir()
    with open(seeds / "postgres" / "001_big.sql", "w") as fh:
        fh.write("CREATE TABLE big (id int PRIMARY KEY, note text);\nCOPY big (id, note) FROM stdin;\n")
        fh.writelines(f"{i}\tnote {i:08d} {'x' * 40}\n" for i in range(1, rows + 1))
        fh.write("\\.\n")
    return seeds


class Timed:
    """A copier that records how long each call took (per service), around the real one."""

    def __init__(self, name: str, inner, times: dict):
        self.name, self.inner, self.times = name, inner, times

    def __getattr__(self, attr):
        fn = getattr(self.inner, attr)
        if not callable(fn):
            return fn

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.times.setdefault(f"{attr} {self.name}", []).append(time.perf_counter() - t0)
        return timed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--no-large", action="store_true")
    parser.add_argument("--aws-flavor", default="ministack")
    parser.add_argument("--out", default="snapshots")
    args = parser.parse_args()

    import subprocess

    from localdev.cluster import Cluster
    from localdev.config import load
    from localdev.services import service_classes

    services = list(service_classes())
    home, config, env = temp_project(services, {"aws": {"flavor": args.aws_flavor}})
    cluster = Cluster(home=home, config=load(start=config.parent, environ={}))
    cluster.up(services=services)
    api = cluster.namespaces
    snaps = api.snapshots
    copy_times: dict[str, list[float]] = {}
    real_copier = snaps.copier
    snaps.copier = lambda s: (c := real_copier(s)) and Timed(s, c, copy_times)  # type: ignore[method-assign]
    result: dict = {"services": services, "aws_flavor": args.aws_flavor, "rows": {}}
    rows = result["rows"]

    def create(name: str, seeds: Path, replay: bool) -> float:
        api.cluster.config.namespaces["seed_snapshots"] = not replay
        t0 = time.perf_counter()
        api.create(name, ttl=3600, seed=True, seeds_dir=seeds)
        return time.perf_counter() - t0

    try:
        # -- the example seeds -----------------------------------------------------------------
        create("warm", EXAMPLE, replay=True)  # the PostgreSQL template and spares, warm clients
        api.delete("warm")
        rows["example: first create (replay + seed snapshot)"] = summary([create("ex-first", EXAMPLE, False)])
        replay, copy = [], []
        for i in range(args.rounds):
            replay.append(create(f"ex-r{i}", EXAMPLE, replay=True))
            copy.append(create(f"ex-c{i}", EXAMPLE, replay=False))
            api.delete(f"ex-r{i}")
            api.delete(f"ex-c{i}")
        rows["example: create by replay"] = summary(replay)
        rows["example: create from seed snapshot"] = summary(copy)
        resets = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            snaps.reset("ex-first")
            resets.append(time.perf_counter() - t0)
        rows["example: ns reset (api)"] = summary(resets)
        cli_resets = []
        for _ in range(min(args.rounds, 5)):
            t0 = time.perf_counter()
            subprocess.run([LOCALDEV, "ns", "reset", "ex-first"], env=env, check=True, stdout=subprocess.DEVNULL)
            cli_resets.append(time.perf_counter() - t0)
        rows["example: ns reset (cli)"] = summary(cli_resets)
        from localdev.agent_client import AgentClient

        agent, fixture_resets = AgentClient(home), []
        for _ in range(args.rounds):  # what the localdev_reset fixture does before each test
            t0 = time.perf_counter()
            agent.reset("ex-first")
            fixture_resets.append(time.perf_counter() - t0)
        rows["example: localdev_reset fixture (agent client)"] = summary(fixture_resets)
        result["example_copy_per_service"] = {k: summary(v) for k, v in sorted(copy_times.items())}
        copy_times.clear()
        api.delete("ex-first")

        # -- large seeds -----------------------------------------------------------------------
        if not args.no_large:
            tmp = Path(tempfile.mkdtemp(prefix="localdev-bench-large-"))
            try:
                seeds = large_seeds(tmp, args.items, args.rows)
                result["large"] = {"dynamodb_items": args.items, "mongo_documents": args.items, "pg_rows": args.rows}
                rows["large: first create (replay + seed snapshot)"] = summary([create("lg-first", seeds, False)])
                result["large_take_per_service"] = {k: summary(v) for k, v in sorted(copy_times.items())}
                copy_times.clear()
                copies = []
                for i in range(3):
                    copies.append(create(f"lg-c{i}", seeds, replay=False))
                    api.delete(f"lg-c{i}")
                rows["large: create from seed snapshot"] = summary(copies)
                result["large_copy_per_service"] = {k: summary(v) for k, v in sorted(copy_times.items())}
                copy_times.clear()
                t0 = time.perf_counter()
                snaps.reset("lg-first")
                rows["large: ns reset"] = summary([time.perf_counter() - t0])
                api.delete("lg-first")
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    finally:
        api.close()
        cluster.down(purge=True)
        shutil.rmtree(home.parent, ignore_errors=True)

    ex_replay, ex_copy = rows["example: create by replay"]["p50"], rows["example: create from seed snapshot"]["p50"]
    result["ratio_example_replay_over_copy_p50"] = ex_replay / ex_copy
    print(f"{'':52} {'p50 s':>8} {'p95 s':>8} {'n':>3}")
    for name, row in rows.items():
        print(f"{name:52} {row['p50']:8.3f} {row['p95']:8.3f} {row['n']:3d}")
    print(f"example: replay / copy (p50) = {result['ratio_example_replay_over_copy_p50']:.2f}x")
    for section in ("example_copy_per_service", "large_take_per_service", "large_copy_per_service"):
        if section in result:
            print(section + ": " + ", ".join(f"{k} {v['p50']:.3f}s" for k, v in result[section].items()))
    print(f"saved {save(args.out, result)}")
    print(json.dumps({k: round(v["p50"], 3) for k, v in rows.items()}))


if __name__ == "__main__":
    main()
