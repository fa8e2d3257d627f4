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
    # A developer's shell may forbid bytecode files: then every module changed since the last one was written
    # is compiled again at each start, which a user's installed CLI never pays.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return root / "home", config, env


def cli(env: dict, *args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([LOCALDEV, *args], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t0


def timed(argv: list[str], runs: int, env: dict | None = None) -> list[float]:
    """Wall seconds of `runs` runs of `argv`, each a new process."""
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env)
        out.append(time.perf_counter() - t0)
    return out


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


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (postgres backends, LocalStack's helpers, ...)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


def pss_mb(pids: list[int]) -> float:
    """Proportional set size in MB: shared pages (PostgreSQL's shared buffers) counted once, not per process."""
    total_kb = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return total_kb / 1024


def cluster_pss_mb(home: Path, names: list[str]) -> dict[str, float]:
    """PSS of each service's process tree (and the agent's) of the native cluster in `home`."""
    return {name: pss_mb(pids) for name, pids in cluster_pids(home, names).items()}


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU the processes have used, in seconds (those gone meanwhile are skipped)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def cluster_pids(home: Path, names: list[str]) -> dict[str, list[int]]:
    """Each service's process tree (and the agent's) of the native cluster in `home`."""
    out = {}
    for name in names:
        try:
            pid = json.loads((home / "run" / name / "pid").read_text())["pid"]
        except (OSError, ValueError):
            continue
        out[name] = process_tree(pid)
    return out


def run_suite_for_results(test_file: str, env_name: str, results: Path) -> None:
    """Run a pytest file that writes what each case saw to the JSON named by `$env_name`; exit if it wrote none."""
    root = Path(__file__).resolve().parent.parent
    results.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test_file], cwd=root,
                          env={**os.environ, env_name: str(results)})
    if not results.exists():
        sys.exit(f"{test_file} wrote no results (pytest exit {proc.returncode})")
    if proc.returncode != 0:
        print(f"note: pytest exited {proc.returncode}; the table shows what the run saw", file=sys.stderr)


def fill_block(doc: Path, begin: str, end: str, content: str) -> None:
    """Replace what lies between the `begin` and `end` marker lines of `doc` (generated tables); nothing else."""
    text = doc.read_text()
    if begin not in text or end not in text:
        sys.exit(f"{doc} has no {begin} ... {end} section to fill")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    doc.write_text(f"{head}{begin}\n{content}{end}{tail}")
