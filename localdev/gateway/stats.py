"""Per-namespace request counts of the gateway, written to a file `status --json` reads (never a credential:
requests are counted under the namespace's name, or "(unknown)" for a key no namespace has)."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

log = logging.getLogger("localdev.gateway")

UNKNOWN = "(unknown)"
FILE = "stats.json"


class Stats:
    def __init__(self, path: Path):
        self.path = path
        self.counts: dict[str, dict[str, int]] = {}
        self.started = time.time()
        self._dirty = True
        self._failing = False

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
        """The counts to their file for `status`; a full disk or a lost file costs the figures, never the
        gateway (it keeps forwarding, and writes them again at the next tick)."""
        if not self._dirty:
            return
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(self.snapshot()))
            os.replace(tmp, self.path)
        except OSError as exc:
            if not self._failing:
                log.warning("gateway: cannot write its counts to %s (%s); still forwarding", self.path,
                            exc.strerror or exc)
            self._failing = True
            return
        self._dirty = self._failing = False


def read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
