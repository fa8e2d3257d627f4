"""What the CLI library costs per call: `localdev --help` and `localdev ns list` (against a running cluster
with a few namespaces) through localdev's argparse CLI and through the same command tree written with typer
(bench/typer_cli.py, calling the same functions), beside a bare interpreter start. Runs alternate, so load on
the machine falls on both alike.

    .venv/bin/python bench/cli_library.py [--runs 20]      (typer: pip install -e '.[bench]')
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import LOCALDEV, save, summary, temp_project

BENCH = Path(__file__).resolve().parent
VARIANTS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "argparse (localdev)": [sys.executable, "-m", "localdev.cli"],
    "typer": [sys.executable, str(BENCH / "typer_cli.py")],
}


def timed(argv: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    home, _config, env = temp_project(["postgres"])
    subprocess.run([LOCALDEV, "up"], env=env, check=True, stdout=subprocess.DEVNULL)
    try:
        for i in range(5):
            subprocess.run([LOCALDEV, "ns", "create", f"bench-{i}", "--no-seed"], env=env, check=True,
                           stdout=subprocess.DEVNULL)
        results: dict[str, dict] = {}
        for command in (["--help"], ["ns", "list"]):
            label = "localdev " + " ".join(command)
            times: dict[str, list[float]] = {name: [] for name in VARIANTS}
            for name, argv in VARIANTS.items():  # one warm-up each (page cache, .pyc files)
                timed(argv + (command if name != "python -c pass" else []), env)
            for _ in range(args.runs):
                for name, argv in VARIANTS.items():
                    times[name].append(timed(argv + (command if name != "python -c pass" else []), env))
            results[label] = {name: summary(values) for name, values in times.items()}
        print(f"{'call':<20} {'python -c pass':>15} {'argparse':>10} {'typer':>10} {'typer extra':>12} {'ratio':>7}"
              f"   (p50, {args.runs} runs each)")
        for label, by in results.items():
            bare, ours, typer = (by[n]["p50"] for n in VARIANTS)
            by["typer_extra_s"] = typer - ours
            by["ratio"] = typer / ours
            print(f"{label:<20} {bare * 1e3:>13.0f}ms {ours * 1e3:>8.0f}ms {typer * 1e3:>8.0f}ms "
                  f"{(typer - ours) * 1e3:>10.0f}ms {typer / ours:>6.2f}x")
        import typer as typer_module

        # the figures scale with the machine's load: it is recorded beside them
        path = save("cli_library", {"runs": args.runs, "typer_version": typer_module.__version__,
                                    "load_average_1m": os.getloadavg()[0], "results": results})
        print(f"load average (1 min) {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"saved {path}")
    finally:
        subprocess.run([LOCALDEV, "down", "--purge"], env=env, stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
