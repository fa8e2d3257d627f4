"""What every `localdev` command pays before it runs: the interpreter's start, with localdev installed in
each editable mode pip offers, side by side in one run.

setuptools' default editable mode installs an import hook (a finder module imported by a .pth file at
every start); `editable_mode=compat` (what scripts/bootstrap.sh asks for) is a plain path in a .pth file.
Each mode gets a throwaway venv that sees this venv's packages (a .pth line) and localdev installed
--no-deps in that mode; then `python -c pass` and `localdev --help` are timed in each.

Usage: .venv/bin/python bench/cli_start.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import site
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import timed  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"


def make_venv(root: Path, mode: str) -> Path:
    venv = root / mode
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # this venv's packages (pip, setuptools, the dependencies), without copying them
    Path(purelib, "zz_parent.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    args = [str(py), "-m", "pip", "install", "-q", "--no-deps", "-e", str(REPO)]
    if mode != "default":
        args += ["--config-settings", f"editable_mode={mode}"]
    subprocess.run(args, check=True, capture_output=True)
    return venv


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("default", "compat"):
            venv = make_venv(Path(tmp), mode)
            py, cli = str(venv / "bin" / "python"), str(venv / "bin" / "localdev")
            rows[mode] = {"python -c pass": timed([py, "-c", "pass"], args.runs),
                          "localdev --help": timed([cli, "--help"], args.runs)}
    print(f"{'command':<18}{'default p50':>14}{'compat p50':>14}{'ratio':>8}")
    summary = {}
    for what in ("python -c pass", "localdev --help"):
        d, c = (statistics.median(rows[m][what]) * 1000 for m in ("default", "compat"))
        summary[what] = {"default_ms": round(d, 1), "compat_ms": round(c, 1), "ratio": round(d / c, 2)}
        print(f"{what:<18}{d:>12.1f}ms{c:>12.1f}ms{d / c:>7.2f}x")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cli_start.json").write_text(json.dumps({"runs": args.runs, "p50": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
