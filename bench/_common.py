"""Shared by the benchmarks: temporary clusters, timing, percentiles, results files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from localdev.ports import free_port

RESULTS = Path(__file__).parent / "results"
LOCALDEV = str(Path(sys.executable).parent / "localdev")  # the venv's script, not a pyenv shim


def temp_project(services: list[str], options: dict | None = None) -> tuple[Path, Path, dict]:
    """(home, config path, env for the CLI) of a new cluster enabling exactly `services` on free ports."""
    from localdev.services import service_classes

    root = Path(tempfile.mkdtemp(prefix="localdev-bench-"))
    lines = []
    for name in service_classes():
        lines += [f"[services.{name}]", f"enabled = {'true' if name in services else 'false'}", f"port = {free_port()}"]
        for key, value in (options or {}).get(name, {}).items():
            lines.append(f"{key} = {json.dumps(value)}")
    config = root / "localdev.toml"
    config.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "LOCALDEV_HOME": str(root / "home"), "LOCALDEV_CONFIG": str(config)}
    return root / "home", config, env


def cli(env: dict, *args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([LOCALDEV, *args], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t0


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def summary(values: list[float]) -> dict:
    return {"n": len(values), "p50": pct(values, 50), "p95": pct(values, 95), "min": min(values), "max": max(values)}


def save(name: str, data: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    data = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **data}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2))
    return path
