"""Backup and restore of a whole cluster: every namespace (its data as an export archive, and its labels,
expiry, owner, region, connection budget and secrets) and the registry's tokens (their hashes).

    DIR/backup.json                   0600: the registry's records, secrets and `ns env` included, and each
                                      archive's SHA-256
    DIR/namespaces/<name>.tar.zst     0600: `ns export` of each namespace

A backup is written into DIR.partial-<pid> and renamed to DIR when complete, so a DIR that exists is whole.
Restore checks everything before it changes anything (the file, each archive's checksum, that no name,
token or AWS key is taken in the target cluster: exit 2 otherwise, unless --skip-existing), then imports
each namespace with its old secrets, so the old credentials work again: PostgreSQL passwords, Mongo users,
Redis ACL users, AWS keys. If one fails, the namespaces this restore made are deleted again.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from localdev.errors import BadInput, LocalDevError
from localdev.exports import sha256_file

FORMAT_VERSION = 1
INDEX = "backup.json"
ARCHIVES = "namespaces"


# -- the agent's side --------------------------------------------------------------------------------------
def registry_rows(namespaces) -> dict:
    """The registry's ready namespaces (secrets included) and tokens (hashed), for a backup (admin only)."""
    from psycopg.rows import dict_row

    with namespaces.pool().connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        rows = cur.execute("SELECT name, state, created_at, expires_at, labels, secrets, region, owner, "
                           "max_connections FROM namespaces ORDER BY created_at, name").fetchall()
        tokens = cur.execute("SELECT name, role, hash, created_at, expires_at FROM tokens ORDER BY name").fetchall()

    def ts(value):
        return value.timestamp() if value is not None else None

    return {"namespaces": [{**r, "created_at": ts(r["created_at"]), "expires_at": ts(r["expires_at"])} for r in rows],
            "tokens": [{**t, "created_at": ts(t["created_at"]), "expires_at": ts(t["expires_at"])} for t in tokens]}


def restore_tokens(namespaces, tokens) -> dict:
    """Insert a backup's tokens; one whose name exists with another hash is refused before any is written."""
    from datetime import UTC, datetime

    from localdev.names import validate_name
    from localdev.tokens import ROLES

    if not isinstance(tokens, list):
        raise BadInput("expected a list of tokens")
    for t in tokens:
        if not isinstance(t, dict) or t.get("role") not in ROLES or not isinstance(t.get("hash"), str):
            raise BadInput(f"a backup's token is malformed: {str(t)[:80]}")
        validate_name(t.get("name", ""))

    def at(value):
        return datetime.fromtimestamp(value, UTC) if value is not None else None

    made = []
    with namespaces.pool().connection() as conn, conn.transaction():
        for t in tokens:
            row = conn.execute("SELECT hash FROM tokens WHERE name = %s", (t["name"],)).fetchone()
            if row and row[0] != t["hash"]:
                raise BadInput(f"token {t['name']!r} exists in this cluster with another value: "
                               f"`localdev token revoke {t['name']}` first")
            if row is None:
                conn.execute("INSERT INTO tokens (name, role, hash, created_at, expires_at) "
                             "VALUES (%s, %s, %s, %s, %s)",
                             (t["name"], t["role"], t["hash"], at(t.get("created_at")) or datetime.now(UTC),
                              at(t.get("expires_at"))))
                made.append(t["name"])
    return {"restored": made}


# -- the client's side -------------------------------------------------------------------------------------
def backup(client, dest: Path, say=print) -> dict:
    """Write every namespace and the tokens of the cluster `client` talks to into the new folder `dest`."""
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BadInput(f"{dest} exists and is not an empty folder: give a new one")
    registry = client.backup_registry()
    partial = dest.with_name(f"{dest.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / ARCHIVES).mkdir(parents=True, mode=0o700)
    os.chmod(partial, 0o700)
    entries = []
    try:
        for row in registry["namespaces"]:
            if row["state"] != "ready":
                say(f"  skipped {row['name']}: it is {row['state']} (an interrupted command; `localdev ns gc`)")
                continue
            relative = f"{ARCHIVES}/{row['name']}.tar.zst"
            with _private(partial / relative) as out:
                client.export(row["name"], out, compress=True)
            entries.append({**{k: row[k] for k in ("name", "created_at", "expires_at", "labels", "secrets", "region",
                                                   "owner", "max_connections")},
                            "env": client.env(row["name"]),  # what decides more than the secrets (Redis's db)
                            "archive": relative, "sha256": sha256_file(partial / relative)})
            say(f"  {row['name']}")
        index = {"format_version": FORMAT_VERSION, "created_at": time.time(), "namespaces": entries,
                 "tokens": registry["tokens"]}
        with _private(partial / INDEX, "w") as fh:
            json.dump(index, fh, indent=1, sort_keys=True)
        if dest.exists():
            dest.rmdir()
        os.replace(partial, dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return {"namespaces": [e["name"] for e in entries], "tokens": len(registry["tokens"]), "path": str(dest)}


def _private(path: Path, mode: str = "wb"):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, mode)


def read_index(folder: Path) -> dict:
    """The backup's index, checked, and every archive checked against its SHA-256."""
    folder = Path(folder)
    path = folder / INDEX
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"{folder}: no {INDEX}: not a localdev backup (or an unfinished one)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(index, dict) or not isinstance(index.get("format_version"), int):
        raise BadInput(f"{path}: no format_version: not a localdev backup")
    if index["format_version"] > FORMAT_VERSION:
        raise BadInput(f"{path}: made by a newer localdev (backup format {index['format_version']}; this one reads "
                       f"{FORMAT_VERSION} and older): upgrade localdev to restore it")
    if not isinstance(index.get("namespaces"), list) or not isinstance(index.get("tokens"), list):
        raise BadInput(f"{path}: malformed (namespaces, tokens)")
    for entry in index["namespaces"]:
        if not isinstance(entry, dict) or not all(k in entry for k in ("name", "archive", "sha256", "secrets")):
            raise BadInput(f"{path}: a namespace entry is malformed: {str(entry)[:80]}")
        archive = (folder / entry["archive"]).resolve()
        if folder.resolve() not in archive.parents:
            raise BadInput(f"{path}: namespace {entry['name']!r}: its archive {entry['archive']!r} is outside "
                           "the backup")
        if not archive.is_file():
            raise BadInput(f"{path}: namespace {entry['name']!r}: its archive {entry['archive']} is missing")
        if sha256_file(archive) != entry["sha256"]:
            raise BadInput(f"{archive}: does not match its SHA-256 in {INDEX}: changed or damaged since the backup")
    return index


def restore(client, folder: Path, skip_existing: bool = False, say=print) -> dict:
    """Restore a backup into the cluster `client` talks to (see the module's docstring)."""
    from localdev.names import validate_name

    folder = Path(folder)
    index = read_index(folder)
    present = client.backup_registry()
    names = {r["name"] for r in present["namespaces"]}
    keys = {(r["secrets"].get("aws") or {}).get("access_key_id"): r["name"] for r in present["namespaces"]}
    tokens = {t["name"]: t["hash"] for t in present["tokens"]}
    todo, skipped = [], []
    now = time.time()
    for entry in sorted(index["namespaces"], key=lambda e: (e.get("created_at") or 0, e["name"])):
        validate_name(entry["name"])
        if entry["name"] in names:
            if not skip_existing:
                raise BadInput(f"namespace {entry['name']!r} exists in this cluster: delete it first, or "
                               "--skip-existing to keep the cluster's and restore the others")
            skipped.append(f"{entry['name']} (exists)")
            continue
        key = (entry["secrets"].get("aws") or {}).get("access_key_id")
        if key in keys:
            raise BadInput(f"namespace {entry['name']!r}: its AWS access key belongs to namespace {keys[key]!r} of "
                           "this cluster: it cannot get its old credentials back here")
        if entry.get("expires_at") is not None and entry["expires_at"] <= now:
            skipped.append(f"{entry['name']} (expired)")
            continue
        todo.append(entry)
    clashing = [t["name"] for t in index["tokens"] if t["name"] in tokens and tokens[t["name"]] != t["hash"]]
    if clashing:
        raise BadInput(f"token {clashing[0]!r} exists in this cluster with another value: "
                       f"`localdev token revoke {clashing[0]}` first")
    made = []
    try:
        for entry in todo:
            ttl = "none" if entry.get("expires_at") is None else max(1, int(entry["expires_at"] - time.time()))
            record = {k: entry.get(k) for k in ("secrets", "region", "labels", "owner", "max_connections", "env")}
            with open(folder / entry["archive"], "rb") as fh:
                info = client.import_archive(fh, entry["name"], label=str(folder / entry["archive"]), ttl=ttl,
                                             restore=record)
            made.append(entry["name"])
            say(f"  {entry['name']}")
            for note in info.get("notes", []):
                say(f"    note: {note}")
        client.restore_tokens(index["tokens"])
    except BaseException as exc:
        for name in reversed(made):
            try:
                client.delete(name, missing_ok=True)
            except LocalDevError:
                pass  # the next gc, or the user, removes it; the error below says what failed
        if isinstance(exc, LocalDevError) and made:
            raise type(exc)(f"{exc} (the {len(made)} namespace(s) this restore had made were deleted again)") from exc
        raise
    for line in skipped:
        say(f"  skipped {line}")
    return {"restored": made, "skipped": skipped, "tokens": len(index["tokens"])}
