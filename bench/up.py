"""`localdev up` per service and for the whole cluster: cold (a fresh LOCALDEV_HOME; binaries already in
the cache), restart (after `down`, data kept) and no-op (everything already healthy), per runtime; natively,
also the CPU each process used by the end of the whole cluster's cold `up`. The whole cluster is measured twice:
bare, and as a user's project is, with the example seeds, when `up` also waits for the agent's seed snapshot.

    python bench/up.py [--services postgres,dynamodb,aws,mongo] [--rounds 3] [--runtime native|docker]

For the docker runtime the images come from LOCALDEV_TEST_IMAGE_<SERVICE>, or _<FLAVOR> for a flavor with a
stand-in of its own (scripts/engine.sh's stand-ins), when set, else the services' defaults.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import cli, cluster_pids, cpu_seconds, save, summary, temp_project  # noqa: E402

SEEDS = Path(__file__).parent.parent / "seeds"


def cold_cpu(home: Path, services: list[str], children_before: float) -> dict[str, float]:
    """CPU seconds each process has used by the end of a cold native `up`: the `up` command with what it ran
    and waited for (cp, initdb, single-user postgres), the agent, the gateway and each service's tree."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = {"up": round(children.ru_utime + children.ru_stime - children_before, 2)}
    used.update({name: round(cpu_seconds(pids), 2)
                 for name, pids in cluster_pids(home, ["agent", "gateway", *services]).items()})
    return used


def measure(services: list[str], runtime: str, rounds: int, cpu: list | None = None,
            seeded: bool = False) -> dict[str, list[float]]:
    options = {"aws": {"flavor": os.environ.get("BENCH_AWS_FLAVOR", "localstack")}}
    from localdev.services import service_classes

    for name in services:
        option = service_classes()[name].options.get("flavor")
        flavor = options.get(name, {}).get("flavor") or (option.default if option else None)
        # a flavor with a stand-in of its own (tests/images/<flavor>/) never runs another flavor's image
        own = flavor and (Path(__file__).parent.parent / "tests" / "images" / flavor).is_dir()
        image = os.environ.get(f"LOCALDEV_TEST_IMAGE_{flavor.upper().replace('-', '_')}" if own and flavor
                               else f"LOCALDEV_TEST_IMAGE_{name.upper()}")
        if runtime == "docker" and image:
            options.setdefault(name, {})["image"] = image
    out: dict[str, list[float]] = {"cold": [], "restart": [], "no-op": []}
    for _ in range(rounds):
        home, config, env = temp_project(services, options)
        env = {**env, "LOCALDEV_RUNTIME": runtime}
        if seeded:  # then `up` also waits for the agent's seed snapshot
            shutil.copytree(SEEDS, config.parent / "seeds")
        try:
            ran = resource.getrusage(resource.RUSAGE_CHILDREN)
            out["cold"].append(cli(env, "up"))
            if cpu is not None and runtime == "native":
                cpu.append(cold_cpu(home, services, ran.ru_utime + ran.ru_stime))
            out["no-op"].append(cli(env, "up"))
            cli(env, "down")
            out["restart"].append(cli(env, "up"))
        finally:
            cli(env, "down", "--purge")
            shutil.rmtree(home.parent, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", default="postgres,dynamodb,aws,mongo")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runtime", default="native", choices=["native", "docker"])
    args = parser.parse_args()
    services = args.services.split(",")
    groups = [[s] if s != "mongo" else ["postgres", "mongo"] for s in services] + [services, services]
    rows = {}
    print(f"runtime: {args.runtime}; {args.rounds} rounds; seconds")
    print(f"{'services':36} {'cold p50':>9} {'restart p50':>12} {'no-op p50':>10}")
    cpu: list[dict[str, float]] = []
    for i, group in enumerate(groups):
        seeded = i == len(groups) - 1
        result = measure(group, args.runtime, args.rounds, cpu if seeded else None, seeded)
        label = "+".join(group) + (" seeded" if seeded else "")
        for kind, values in result.items():
            rows[f"{label} {kind}"] = summary(values)
        print(f"{label:36} {rows[label + ' cold']['p50']:>9.2f} {rows[label + ' restart']['p50']:>12.2f} "
              f"{rows[label + ' no-op']['p50']:>10.2f}", flush=True)
    whole = "+".join(services) + " seeded"
    chart_rows = {k.replace(whole + " ", "cluster "): v for k, v in rows.items() if k.startswith(whole + " ")}
    cold_cpu_s = {name: statistics.median(c.get(name, 0.0) for c in cpu) for name in (cpu[0] if cpu else {})}
    if cold_cpu_s:
        print(f"CPU seconds of a cold `up` of {whole} (p50 per process): {cold_cpu_s}, "
              f"{sum(cold_cpu_s.values()):.2f} in all")
    print(f"wrote {save(f'up_{args.runtime}', {'runtime': args.runtime, 'rows': rows, 'cold_cpu_s': cold_cpu_s})}")
    if args.runtime == "native":
        save("up", {"runtime": args.runtime, "rows": chart_rows})


if __name__ == "__main__":
    main()
