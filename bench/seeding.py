"""ns create with the example seeds: the template-clone path vs replaying the fixtures, side by side.

    python bench/seeding.py [--rounds 15] [--services postgres] [--seeds seeds]

"template" = `ns create NAME` (seeded from a template built once per fixtures content);
"replay"   = `ns create NAME --no-seed` + `localdev seed NAME` (every statement run again).
Measured through the CLI (what a user waits for) and through the in-process API (the service work alone).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import cli, save, summary, temp_project  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--services", default="postgres")
    parser.add_argument("--seeds", default=str(Path(__file__).parent.parent / "seeds"))
    args = parser.parse_args()
    services = args.services.split(",")
    seeds = str(Path(args.seeds).resolve())

    from localdev.cluster import Cluster

    home, _, env = temp_project(services)
    cli(env, "up")
    cluster = Cluster(home=home)
    try:
        cli(env, "ns", "create", "warm", "--seeds", seeds)  # builds the template once, as the first user would
        template, replay, api_template, api_replay = [], [], [], []
        for i in range(args.rounds):
            template.append(cli(env, "ns", "create", f"tpl-{i}", "--seeds", seeds))
            replay.append(cli(env, "ns", "create", f"rep-{i}", "--no-seed") + cli(env, "seed", f"rep-{i}", "--seeds", seeds))
            t0 = time.perf_counter()
            cluster.namespaces.create(f"api-tpl-{i}", seed=True, seeds_dir=seeds)
            api_template.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            cluster.namespaces.create(f"api-rep-{i}", seed=False)
            cluster.namespaces.seed(f"api-rep-{i}", seeds)
            api_replay.append(time.perf_counter() - t0)
    finally:
        cluster.namespaces.close()
        cli(env, "down", "--purge")
        shutil.rmtree(home.parent, ignore_errors=True)
    rows = {"template clone (cli)": summary(template), "replay (cli)": summary(replay),
            "template clone (api)": summary(api_template), "replay (api)": summary(api_replay)}
    print(f"services: {','.join(services)}; seeds: {seeds}")
    print(f"{'path':22} {'n':>3} {'p50 s':>8} {'p95 s':>8}")
    for way, s in rows.items():
        print(f"{way:22} {s['n']:>3} {s['p50']:>8.3f} {s['p95']:>8.3f}")
    ratio = rows["replay (api)"]["p50"] / rows["template clone (api)"]["p50"]
    print(f"replay / template p50 (api): {ratio:.2f}x")
    print(f"wrote {save('seeding', {'services': services, 'rows': rows, 'ratio_replay_over_template_p50': ratio})}")


if __name__ == "__main__":
    main()
