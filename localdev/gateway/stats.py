"""Per-namespace request counts of the gateway, written to a file `status --json` reads (never a credential:
requests are counted under the namespace's name, or "(unknown)" for a key no namespace has)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

UNKNOWN = "(unknown)"
FILE = "stats.json"


class Stats:
    def __init__(self, path: Path):
        self.path = path
        self.counts: dict[str, dict[str, int]] = {}
        self.started = time.time()
        self._dirty = True

    def count(self, namespace: str | None, error: bool = False, denied: bool = False) -> None:
        entry = self.counts.get(namespace or UNKNOWN)
        if entry is None:
            entry = self.counts[namespace or UNKNOWN] = {"requests": 0, "errors": 0, "denied": 0}
        entry["requests"] += 1
        entry["errors"] += error or denied
        entry["denied"] += denied
        self._dirty = True

    def snapshot(self) -> dict:
        return {"pid": os.getpid(), "started": self.started, "updated": time.time(),
                "namespaces": {k: dict(v) for k, v in sorted(self.counts.items())}}

    def write(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.snapshot()))
        os.replace(tmp, self.path)


def read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
