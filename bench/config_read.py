"""What reading the project's config costs a `localdev` command: a new process loading `[namespaces]` (what
`ns create` reads) from a localdev.toml and from a pyproject.toml, parsed by tomllib against the parse kept in
the cluster's cache (localdev/config.py `_ParseCache`), side by side in one run.

Usage: .venv/bin/python bench/config_read.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import save, timed  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
# A project's config of the README's kind: every service on its port, the namespaces' defaults.
LOCALDEV_TOML = """runtime = "auto"

[services.postgres]
port = 5432

[services.dynamodb]
port = 8000

[services.aws]
port = 4566
flavor = "localstack"

[services.mongo]
port = 27017

[namespaces]
default_ttl = "2h"
max_connections = 20
"""
READ = "from localdev.config import load_namespace_settings; load_namespace_settings()"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = {"localdev.toml": root / "localdev.toml", "pyproject.toml": root / "pyproject.toml"}
        files["localdev.toml"].write_text(LOCALDEV_TOML)
        files["pyproject.toml"].write_text((REPO / "pyproject.toml").read_text()
                                           + '\n[tool.localdev.namespaces]\ndefault_ttl = "2h"\n')
        (root / "home" / "cache").mkdir(parents=True)
        base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        for label, path in files.items():
            cached = {**base, "LOCALDEV_HOME": str(root / "home"), "LOCALDEV_CONFIG": str(path)}
            parsed = {**cached, "LOCALDEV_HOME": str(root / "no-home")}  # no cache dir: parsed every time
            timed([sys.executable, "-c", READ], 1, cached)  # keeps the parse
            # alternated, so that a change in the machine's speed meets both
            rows[label] = {"parsed": [], "cached": [], "python": []}
            for _ in range(args.runs):
                rows[label]["parsed"] += timed([sys.executable, "-c", READ], 1, parsed)
                rows[label]["cached"] += timed([sys.executable, "-c", READ], 1, cached)
                rows[label]["python"] += timed([sys.executable, "-c", "import localdev.errors"], 1, base)
    print(f"{'config file':<16}{'parsed p50':>12}{'cached p50':>12}{'saved':>9}{'(interpreter alone)':>22}")
    summary = {}
    for label, row in rows.items():
        p, c, py = (statistics.median(row[k]) * 1000 for k in ("parsed", "cached", "python"))
        summary[label] = {"parsed_ms": round(p, 1), "cached_ms": round(c, 1), "saved_ms": round(p - c, 1),
                          "interpreter_ms": round(py, 1)}
        print(f"{label:<16}{p:>10.1f}ms{c:>10.1f}ms{p - c:>7.1f}ms{py:>20.1f}ms")
    print(f"results: {save('config_read', {'runs': args.runs, 'p50': summary})}")


if __name__ == "__main__":
    main()
