"""Session overhead of the pytest plugin: a namespace on the shared cluster vs --localdev-ephemeral
(a private cluster for the session, the way Testcontainers-style fixtures work), side by side in one run.

    python bench/pytest_overhead.py [--rounds 5] [--services postgres]

Overhead = wall time of a pytest run of the sample project's seeded test minus that of the same run
with the plugin disabled and no fixtures (plain interpreter + pytest start-up).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import cli, save, summary, temp_project  # noqa: E402

SAMPLE = Path(__file__).parent.parent / "tests" / "plugin_project"


def timed_pytest(project: Path, env: dict, *args: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=project, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"pytest failed:\n{proc.stdout[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--services", default="postgres")
    args = parser.parse_args()
    services = args.services.split(",")

    home, config, env = temp_project(services)
    project = Path(tempfile.mkdtemp(prefix="localdev-bench-project-"))
    shutil.copytree(SAMPLE, project, dirs_exist_ok=True)
    shutil.copy(config, project / "localdev.toml")
    env = {**env, "LOCALDEV_CONFIG": str(project / "localdev.toml")}
    (project / "test_baseline.py").write_text("def test_nothing():\n    pass\n")
    seeded = str(project / "sample_orders.py") + "::test_seeded_orders_are_there"
    cli(env, "up")
    try:
        baseline, shared, ephemeral = [], [], []
        for _ in range(args.rounds):
            baseline.append(timed_pytest(project, env, "-p", "no:localdev", str(project / "test_baseline.py")))
            shared.append(timed_pytest(project, env, seeded))
            ephemeral.append(timed_pytest(project, env, "--localdev-ephemeral", seeded))
    finally:
        cli(env, "down", "--purge")
        shutil.rmtree(home.parent, ignore_errors=True)
        shutil.rmtree(project, ignore_errors=True)
    base = summary(baseline)["p50"]
    rows = {"pytest alone": summary(baseline),
            "shared cluster (namespace)": summary([t - base for t in shared]),
            "--localdev-ephemeral (private cluster)": summary([t - base for t in ephemeral])}
    print(f"services: {','.join(services)}; overhead of one seeded session beyond pytest's own start-up")
    print(f"{'way':40} {'n':>3} {'p50 s':>8} {'p95 s':>8}")
    for way, s in rows.items():
        print(f"{way:40} {s['n']:>3} {s['p50']:>8.3f} {s['p95']:>8.3f}")
    ratio = rows["--localdev-ephemeral (private cluster)"]["p50"] / max(rows["shared cluster (namespace)"]["p50"], 1e-3)
    print(f"ephemeral / shared overhead p50: {ratio:.1f}x")
    print(f"wrote {save('pytest_overhead', {'services': services, 'rows': rows, 'ratio_ephemeral_over_shared_p50': ratio})}")


if __name__ == "__main__":
    main()
