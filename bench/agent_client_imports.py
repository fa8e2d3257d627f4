"""What an HTTP client costs a `localdev ns ...` process to import: localdev.agent_client (ours, on
socket) beside http.client and httpx, each in a fresh interpreter, median of --runs.

    python bench/agent_client_imports.py [--runs 15]

Two figures per module, both from `python -X importtime` (the target's cumulative microseconds):
alone, in an interpreter that has imported nothing else; and on top of what a `localdev ns` process
has already imported when it makes its client (localdev.cli, localdev.state, and for http.client and
httpx localdev.agent_client too: a client on either would still need our errors, json and urllib).
The second is what switching would add to every call. Wall time of the whole process, with and without
the import, is there too, since -X importtime leaves out the interpreter's own start-up.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

CLI = "import localdev.cli; from localdev.state import default_home"
CASES = {  # name: (already imported, the import measured)
    "localdev.agent_client": ("", "localdev.agent_client"),
    "http.client": ("", "http.client"),
    "httpx": ("", "httpx"),
    "localdev.agent_client, in the CLI": (CLI, "localdev.agent_client"),
    "http.client, in the CLI": (f"{CLI}; import localdev.agent_client", "http.client"),
    "httpx, in the CLI": (f"{CLI}; import localdev.agent_client", "httpx"),
}


def cumulative_us(before: str, module: str) -> int:
    code = f"{before}; import {module}" if before else f"import {module}"
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                          check=True)
    for line in proc.stderr.splitlines():  # "import time: self | cumulative | name", nested names indented
        if line.startswith("import time:") and line.split("|")[2] == f" {module}":
            return int(line.split("|")[1])
    return 0  # already imported by `before`: it costs nothing more


def wall_s(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    import httpx
    from _common import save

    samples: dict[str, dict[str, list[float]]] = {name: {"import_ms": [], "wall_ms": [], "wall_without_ms": []}
                                                  for name in CASES}
    for _ in range(args.runs):  # interleaved, so drift on the machine hits every case alike
        for name, (before, module) in CASES.items():
            samples[name]["import_ms"].append(cumulative_us(before, module) / 1000)
            samples[name]["wall_ms"].append(wall_s(f"{before}; import {module}" if before else f"import {module}")
                                            * 1000)
            samples[name]["wall_without_ms"].append(wall_s(before or "pass") * 1000)
    rows = {}
    for name, s in samples.items():
        rows[name] = {"import_ms_median": statistics.median(s["import_ms"]),
                      "import_ms_min": min(s["import_ms"]), "import_ms_max": max(s["import_ms"]),
                      "process_ms_median": statistics.median(s["wall_ms"]),
                      "process_without_it_ms_median": statistics.median(s["wall_without_ms"])}
        rows[name]["process_added_ms"] = rows[name]["process_ms_median"] - rows[name]["process_without_it_ms_median"]
    ours, ours_cli = rows["localdev.agent_client"], rows["localdev.agent_client, in the CLI"]
    for name, row in rows.items():
        mine = ours_cli if name.endswith("in the CLI") else ours
        row["import_ratio_to_agent_client"] = row["import_ms_median"] / mine["import_ms_median"]

    print(f"median of {args.runs} fresh interpreters; httpx {httpx.__version__}; "
          "import = -X importtime cumulative; process = wall time of `python -c`")
    print(f"{'':36} {'import ms':>9} {'x ours':>6} | {'process ms':>10} {'without':>7} {'added':>6}")
    for name, row in rows.items():
        print(f"{name:36} {row['import_ms_median']:9.1f} {row['import_ratio_to_agent_client']:6.1f} | "
              f"{row['process_ms_median']:10.1f} {row['process_without_it_ms_median']:7.1f} "
              f"{row['process_added_ms']:6.1f}")
    path = save("agent_client_imports", {"runs": args.runs, "httpx": httpx.__version__,
                                         "python": sys.version.split()[0], "rows": rows})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
