"""DynamoDB Local snapshots: a copy of the SQLite file DynamoDB Local keeps per access key and region.

Measured (tests/test_snapshots.py): a copy of a key's file, put under a new key's file name before that key's
first request, gives the new key the same tables (indexes, settings) and items, and the two are independent
from then on. DynamoDB Local reads a database's tables from its file when it opens it, on the key's first
request, and keeps it open: so
- taking: SQLite's online backup API reads the source file beside DynamoDB Local (it takes SQLite's shared
  lock, so a write in progress is never half-copied), into `data/dynamodb/snapshots/<id>/<region>.db`;
- a new namespace: its key is new, never seen by DynamoDB Local, so the copy is simply put in place first;
- a reset (the key's database is open): our launcher's admin endpoint `/replace` closes it, swaps the file and
  lets the next request open the copy, holding DynamoDB Local's handler lock meanwhile. No restart.
Natively only: in a container the files sit in the engine's volume and the image runs without our launcher.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from localdev.errors import LocalDevError
from localdev.names import validate_access_key
from localdev.services.aws_clients import access_key_id
from localdev.services.dynamodb import install as provisioning


class FileCopier:
    copies_seeds = True  # a file copy instead of one write per item

    def __init__(self, svc):
        self.svc = svc

    def _dir(self, sid: str) -> Path:
        return self.svc.data_dir / "snapshots" / sid

    def _live(self, key: str, region: str) -> Path:
        return self.svc.data_dir / f"{key}_{region}.db"

    def take(self, ns, sid: str, idle: bool) -> dict:
        key = validate_access_key(access_key_id(ns))
        target = self._dir(sid)
        target.mkdir(parents=True, exist_ok=True)
        regions = sorted(self.svc._regions_on_disk(key))
        for region in regions:
            _backup(self._live(key, region), target / f"{region}.db")
        return {"regions": regions}

    def create(self, ns, sid: str, part: dict) -> dict[str, str]:
        """The snapshot's files put in place before the key's first request. That request is the user's: a
        request under the namespace's key here would make DynamoDB Local open the copy at once, and an open
        database costs its threads and three queries a second until it has been idle for `idle_close_seconds`
        (after a burst of creates, a large share of a core: bench/scale.py); a copy nobody uses is never opened."""
        key = validate_access_key(access_key_id(ns))
        redone = False
        for region in part["regions"]:
            live = self._live(key, region)
            if live.exists():  # a create being redone: DynamoDB Local may have it open
                self._admin("replace", key, region, str(self._dir(sid) / f"{region}.db"))
                redone = True
            else:
                tmp = live.with_name(live.name + ".localdev-tmp")
                shutil.copyfile(self._dir(sid) / f"{region}.db", tmp)
                os.replace(tmp, live)
        if part["regions"] and not redone:
            self.svc.answer()  # a create is refused while the server is down, as create_namespace's request is
            return self.svc.namespace_env(ns)
        return self.svc.create_namespace(ns)  # a request: it makes the key's file, or opens the swapped one

    def reset(self, ns, sid: str | None, part: dict | None) -> None:
        key = validate_access_key(access_key_id(ns))
        keep = set(part["regions"]) if part else set()
        for region in sorted(self.svc._regions_on_disk(key) | keep):
            if region in keep:
                self._admin("replace", key, region, str(self._dir(sid or "") / f"{region}.db"))
            else:
                self._admin("release", key, region)
        self.svc.create_namespace(ns)

    def drop(self, sid: str, part: dict | None) -> None:
        shutil.rmtree(self._dir(sid), ignore_errors=True)

    def _admin(self, action: str, key: str, region: str, source: str | None = None) -> None:
        try:
            port, token = (self.svc.data_dir / provisioning.ADMIN_FILE).read_text().split()
        except (OSError, ValueError):
            raise LocalDevError("dynamodb: the launcher's admin endpoint is not available (DynamoDB Local is "
                                "restarting, or runs without our launcher): try again") from None
        query = {"key": key, "region": region, **({"from": source} if source else {})}
        request = urllib.request.Request(f"http://127.0.0.1:{int(port)}/{action}?{urllib.parse.urlencode(query)}",
                                         method="POST", headers={"X-Localdev-Token": token})
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                resp.read()
        except urllib.error.HTTPError as exc:
            raise LocalDevError(f"dynamodb: {action} of the database of key {key} failed: "
                                f"{exc.read().decode(errors='replace')}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise LocalDevError(f"dynamodb: {action} of the database of key {key} failed: {exc}") from None


def _backup(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite file another process may be writing (SQLite's online backup API)."""
    tmp = target.with_name(target.name + ".tmp")
    tmp.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()
    os.replace(tmp, target)
