"""A per-PR environment two ways, side by side in one run: a namespace on the shared cluster
(`ns create` [+ seeds] + `ns env` + `ns delete`, four ways: two CLI calls, one `ns create --print-env`, the agent's client from a long-lived
process as the pytest plugin does, and the in-process API; with --present namespaces already there) vs a private cluster per PR (`up` + the same namespace in a fresh
LOCALDEV_HOME, the way docker compose / Testcontainers users get one).

    python bench/namespaces.py [--services postgres,dynamodb,aws,mongo] [--seed] [--present 50]
                               [--rounds 20] [--private 3] [--out namespaces]
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
    parser.add_argument("--services", default="postgres")
    parser.add_argument("--present", type=int, default=50, help="namespaces already there")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--private", type=int, default=3, help="private clusters to start")
    parser.add_argument("--seed", action="store_true", help="seed each namespace with the repo's seeds/")
    parser.add_argument("--out", default="namespaces", help="results name under bench/results/")
    parser.add_argument("--aws-flavor", default="localstack")
    args = parser.parse_args()
    services = args.services.split(",")
    seeds = str(Path(__file__).parent.parent / "seeds")
    seed_args = ["--seeds", seeds] if args.seed else ["--no-seed"]
    options = {"aws": {"flavor": args.aws_flavor}}

    from localdev.agent_client import AgentClient
    from localdev.cluster import Cluster
    from localdev.config import load

    home, config, env = temp_project(services, options)
    cluster = Cluster(home=home, config=load(start=config.parent, environ={}))
    cluster.up(services=services)
    agent = AgentClient(home)
    try:
        for i in range(args.present):
            cluster.namespaces.create(f"present-{i}", seed=args.seed, seeds_dir=seeds)
        via_cli1, via_cli, via_agent, via_api, del_cli, del_agent, del_api = [], [], [], [], [], [], []
        for i in range(args.rounds):
            via_cli.append(cli(env, "ns", "create", f"cli-{i}", *seed_args) + cli(env, "ns", "env", f"cli-{i}"))
            del_cli.append(cli(env, "ns", "delete", f"cli-{i}"))
            via_cli1.append(cli(env, "ns", "create", f"one-{i}", *seed_args, "--print-env", "shell"))
            cli(env, "ns", "delete", f"one-{i}")
            t0 = time.perf_counter()
            agent.create(f"agent-{i}", seed=args.seed, seeds_dir=seeds if args.seed else None)
            agent.env(f"agent-{i}")
            via_agent.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            agent.delete(f"agent-{i}")
            del_agent.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            cluster.namespaces.create(f"api-{i}", seed=args.seed, seeds_dir=seeds)
            cluster.namespaces.env(f"api-{i}")
            via_api.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            cluster.namespaces.delete(f"api-{i}")
            del_api.append(time.perf_counter() - t0)
    finally:
        cluster.namespaces.close()
        cluster.down(purge=True)
        shutil.rmtree(home.parent, ignore_errors=True)

    private = []
    for _ in range(args.private):
        p_home, p_config, p_env = temp_project(services, options)
        try:
            private.append(cli(p_env, "up") + cli(p_env, "ns", "create", "pr", *seed_args) + cli(p_env, "ns", "env", "pr"))
        finally:
            cli(p_env, "down", "--purge")
            shutil.rmtree(p_home.parent, ignore_errors=True)

    rows = {"ns create+env (cli)": summary(via_cli), "ns create --print-env (cli)": summary(via_cli1), "ns create+env (agent client)": summary(via_agent),
            "ns create+env (api)": summary(via_api),
            "private cluster per PR": summary(private)}
    deletes = {"ns delete (cli)": summary(del_cli), "ns delete (agent client)": summary(del_agent),
               "ns delete (api)": summary(del_api)}
    print(f"services: {','.join(services)}; seeded: {args.seed}; {args.present} namespaces present")
    print(f"{'way':28} {'n':>3} {'p50 s':>8} {'p95 s':>8}")
    for way, s in {**rows, **deletes}.items():
        print(f"{way:28} {s['n']:>3} {s['p50']:>8.3f} {s['p95']:>8.3f}")
    ratio_cli = rows["private cluster per PR"]["p50"] / rows["ns create+env (cli)"]["p50"]
    ratio_cli1 = rows["private cluster per PR"]["p50"] / rows["ns create --print-env (cli)"]["p50"]
    ratio_agent = rows["private cluster per PR"]["p50"] / rows["ns create+env (agent client)"]["p50"]
    ratio_api = rows["private cluster per PR"]["p50"] / rows["ns create+env (api)"]["p50"]
    print(f"private cluster / namespace p50: {ratio_cli:.1f}x through two CLI calls, {ratio_cli1:.1f}x through one, "
          f"{ratio_agent:.1f}x through the "
          f"agent client, {ratio_api:.1f}x through the API")
    path = save(args.out, {"services": services, "seeded": args.seed, "present": args.present, "rows": rows,
                           "deletes": deletes, "ratio_private_over_cli_p50": ratio_cli,
                           "ratio_private_over_cli_print_env_p50": ratio_cli1,
                           "ratio_private_over_agent_p50": ratio_agent, "ratio_private_over_api_p50": ratio_api})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
