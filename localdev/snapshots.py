"""Snapshots inside the cluster: `ns snapshot`, `ns create --from`, `ns reset`, and seeded creates that copy.

A snapshot is a row of the registry's `snapshots` table plus, per service, a copy its copy primitive made
(`Service.snapshot_copier()`, each service's `snapshot.py`): a template database, a SQLite file, an emulator
account, a Mongo database, a Redis database. Nothing is replayed: every service copies.

Kinds: `user` (named by `ns snapshot --as`), `seed` (`seed:<hash>`: the state the first create with that seed
content made; later creates with the same content copy it, and `ns reset` goes back to it) and `branch`
(`branch:<id>`: taken of a live namespace for `ns create --from`, gone when the create ends).

Like namespaces, a snapshot is worked on under an advisory lock on its name (a space of its own); a row left
`creating`/`deleting` with nobody holding that lock is an interrupted command, which the next snapshot
command (and every `--from`/`reset`) rolls back, its storage found again from the snapshot's id.
"""

from __future__ import annotations

import builtins
import json
import re
import secrets
import threading
from collections import OrderedDict
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from localdev.concurrency import all_at_once, pool
from localdev.errors import BadInput, Conflict, LocalDevError, NotFound
from localdev.names import validate_name
from localdev.services.postgres.locks import LockTimeout, advisory_lock

if TYPE_CHECKING:
    from localdev.names import Namespace

SNAPSHOTS = 0x10CA1E0  # advisory-lock space of snapshot names (namespaces have 0x10CA1DE)
SNAPSHOT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
KEEP_SEEDS = 3  # seed snapshots kept beyond those a namespace still needs for its reset

SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    name        text PRIMARY KEY,
    id          text NOT NULL UNIQUE,
    kind        text NOT NULL CHECK (kind IN ('user', 'seed', 'branch')),
    state       text NOT NULL CHECK (state IN ('creating', 'ready', 'deleting')),
    source      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    services    text[] NOT NULL,
    parts       jsonb NOT NULL DEFAULT '{}',
    owner       text
);
"""


class Copier(Protocol):
    """A service's copy primitive. `sid` names the snapshot's storage (derivable from it alone, so an
    interrupted take is found again); `part` is what take() returned, kept in the registry."""

    # Whether a seeded create is faster copying the seed snapshot than replaying the fixtures (DynamoDB Local
    # writes an item at a time; an emulator's PutObject costs what its CopyObject does).
    copies_seeds: bool

    def take(self, ns: Namespace, sid: str, idle: bool) -> dict:
        """Copy the namespace's current state into the snapshot's storage. `idle`: nobody can be connected
        (a create that has not answered yet), so a copy that needs the source idle may be used."""

    def create(self, ns: Namespace, sid: str, part: dict) -> dict[str, str]:
        """Create the (new) namespace already holding the snapshot's copy; return its env, as create_namespace."""

    def reset(self, ns: Namespace, sid: str | None, part: dict | None) -> None:
        """Make the existing namespace hold the snapshot's copy (None: nothing), keeping its credentials."""

    def drop(self, sid: str, part: dict | None) -> None:
        """Free the snapshot's storage; idempotent; `part` None after an interrupted take."""

    # Optional, for a service whose copies can vanish under us (an emulator without persistence):
    # def lost(self, sid: str, part: dict) -> str | None: what of the copy is gone, as a sentence, or None.


def validate_snapshot_name(name: str) -> str:
    if not isinstance(name, str) or not SNAPSHOT_NAME.fullmatch(name):
        raise BadInput(f"invalid snapshot name {name!r}: 1-40 characters, lowercase letters, digits and '-', "
                       "starting with a letter")
    return name


class Snapshots:
    def __init__(self, namespaces):
        self.namespaces = namespaces
        self._schema_made = False

    @property
    def cluster(self):
        return self.namespaces.cluster

    # -- plumbing -------------------------------------------------------------------------
    @contextmanager
    def _conn(self):
        with self.namespaces.pool().connection() as conn:
            if not self._schema_made:
                with advisory_lock(conn, "snapshots-schema"):
                    conn.execute(SCHEMA)
                self._schema_made = True
            yield conn

    @contextmanager
    def _locked(self, name: str, conn=None):
        with (self._conn() if conn is None else _given(conn)) as held:
            try:
                with advisory_lock(held, name, space=SNAPSHOTS, timeout="120s"):
                    yield held
            except LockTimeout:
                raise Conflict(f"snapshot {name!r} is busy: another command has held it for 120s") from None

    @staticmethod
    def _row(conn, name: str) -> dict | None:
        from psycopg.rows import dict_row

        return conn.cursor(row_factory=dict_row).execute("SELECT * FROM snapshots WHERE name = %s",
                                                         (name,)).fetchone()

    def copier(self, service: str) -> Copier | None:
        return self.cluster.services[service].snapshot_copier()

    def _copiers(self, services: builtins.list[str], doing: str) -> dict[str, Copier]:
        """Every service's copier; a service without one here is refused loudly, before anything is made."""
        found = {s: self.copier(s) for s in services}
        missing = [s for s, c in found.items() if c is None]
        if missing:
            raise BadInput(f"cannot {doing}: {', '.join(missing)} has no snapshot copy on this cluster "
                           f"(runtime {self.cluster.runtime.name}); see the README's snapshot section")
        return {s: c for s, c in found.items() if c is not None}

    def _intact(self, snap: dict, services: builtins.list[str], doing: str, remedy: str) -> None:
        """Refuse, before anything changes, to copy a snapshot that a service has lost part of. `remedy` may
        name the services that lost theirs as `{flags}` (`--service S` for each)."""
        lost = self.lost_parts(snap, services)
        if lost:
            what = "its seeded state" if snap["kind"] == "seed" else f"snapshot {snap['name']!r}"
            whys = "; ".join(f"{service}: {why}" for service, why in lost.items())
            flags = " ".join(f"--service {service}" for service in lost)
            raise LocalDevError(f"cannot {doing}: {what} is incomplete ({whys}); nothing was changed. "
                                + remedy.format(flags=flags))

    def lost_parts(self, snap: dict, services: builtins.list[str] | None = None) -> dict[str, str]:
        """{service: why} for each part of the snapshot its service no longer holds (an emulator restart)."""
        lost = {}
        for service in snap["parts"] if services is None else services:
            part = snap["parts"].get(service)
            if part is not None and (why := _lost(self.copier(service), snap["id"], part)):
                lost[service] = why
        return lost

    def repair(self) -> builtins.list[str]:
        """Roll back snapshots whose command was interrupted (not ready, or a branch snapshot whose create is
        gone: nobody holds their lock)."""
        with self._conn() as conn:
            names = [r[0] for r in conn.execute(
                "SELECT s.name FROM snapshots s WHERE (s.state <> 'ready' OR s.kind = 'branch') AND NOT EXISTS "
                "(SELECT 1 FROM pg_locks l "
                "WHERE l.locktype = 'advisory' AND l.classid::bigint = %s AND l.objid::bigint = "
                "(hashtext(s.name)::bigint & 4294967295) AND l.objsubid = 2)", (SNAPSHOTS,)).fetchall()]
            done = []
            for name in names:
                with advisory_lock(conn, name, space=SNAPSHOTS, try_only=True) as mine:
                    # a branch snapshot lives as long as its create holds its lock
                    if mine and (row := self._row(conn, name)) and (row["state"] != "ready" or row["kind"] == "branch"):
                        self._drop_storage(row)
                        conn.execute("DELETE FROM snapshots WHERE name = %s", (name,))
                        done.append(name)
            return done

    def _drop_storage(self, row: dict) -> None:
        errors = []
        for service in row["services"]:
            copier = self.copier(service) if service in self.cluster.services else None
            if copier is None:
                continue
            try:
                copier.drop(row["id"], row["parts"].get(service))
            except Exception as exc:  # every service is tried; the first failure is reported
                errors.append(f"{service}: {exc}")
        if errors:
            raise LocalDevError(f"freeing snapshot {row['name']!r} failed in {'; '.join(errors)}")

    # -- taking ---------------------------------------------------------------------------
    def _take(self, conn, name: str, kind: str, ns: Namespace, services: builtins.list[str], idle: bool,
              owner: str | None, hints: dict | None = None) -> dict:
        """Under the snapshot's lock (held on `conn`): record, copy every service in parallel, mark ready.
        `hints`: {service: more for its part} (a seed snapshot's PostgreSQL template)."""
        copiers = self._copiers(services, f"snapshot namespace {ns.name!r}")
        sid = secrets.token_hex(6)
        conn.execute("INSERT INTO snapshots (name, id, kind, state, source, services, owner) "
                     "VALUES (%s, %s, %s, 'creating', %s, %s, %s)", (name, sid, kind, ns.name, services, owner))
        parts: dict[str, dict] = {}
        try:
            parts = _parallel(list(copiers), lambda s: copiers[s].take(ns, sid, idle), f"snapshot of {ns.name!r}",
                              done=parts)
        except BaseException:
            try:
                self._drop_storage({"name": name, "id": sid, "services": services, "parts": parts})
                conn.execute("DELETE FROM snapshots WHERE name = %s", (name,))
            except Exception:
                pass  # left 'creating': the next snapshot command rolls it back
            raise
        for service, more in (hints or {}).items():
            if service in parts:
                parts[service] = {**parts[service], **more}
        conn.execute("UPDATE snapshots SET state = 'ready', parts = %s WHERE name = %s", (json.dumps(parts), name))
        row = self._row(conn, name)
        assert row is not None
        return row

    def take(self, namespace: str, as_name: str, owner: str | None = None) -> dict:
        """`ns snapshot NAME --as SNAP`."""
        validate_name(namespace)
        validate_snapshot_name(as_name)
        self.repair()
        with self._locked(as_name) as conn:
            if self._row(conn, as_name):
                raise BadInput(f"the snapshot name {as_name!r} is taken: choose another, or "
                               f"`localdev ns snapshot --delete {as_name}` first")
            with self.namespaces._locked(namespace) as ns_conn:
                row = self._source_row(ns_conn, namespace, owner)
                ns = self.namespaces._namespace(row)
                return _info(self._take(conn, as_name, "user", ns, list(row["services"]), False, owner))

    def _source_row(self, conn, namespace: str, owner: str | None) -> dict:
        """The ready namespace a snapshot is taken of; an unknown one is bad input (nothing is made)."""
        try:
            return self.namespaces._ready_row(conn, namespace, owner)
        except NotFound:
            raise BadInput(f"no namespace named {namespace!r} to snapshot: `localdev ns list` shows them") from None

    # -- listing and deleting ----------------------------------------------------------------
    def list(self, owner: str | None = None, kinds=("user",)) -> builtins.list[dict]:
        self.repair()
        from psycopg.rows import dict_row

        with self._conn() as conn:
            rows = conn.cursor(row_factory=dict_row).execute(
                "SELECT * FROM snapshots WHERE kind = ANY(%s) AND (%s::text IS NULL OR owner = %s) "
                "ORDER BY created_at, name", (builtins.list(kinds), owner, owner)).fetchall()
        return [_info(r) for r in rows]

    def delete(self, name: str, owner: str | None = None) -> bool:
        validate_snapshot_name(name)
        self.repair()
        with self._locked(name) as conn:
            row = self._row(conn, name)
            if row is None or row["kind"] != "user" or (owner is not None and row["owner"] != owner):
                raise BadInput(f"no snapshot named {name!r}: `localdev ns snapshots` lists them")
            self._delete_row(conn, row)
        return True

    def _delete_row(self, conn, row: dict) -> None:
        conn.execute("UPDATE snapshots SET state = 'deleting' WHERE name = %s", (row["name"],))
        self._drop_storage(row)
        conn.execute("DELETE FROM snapshots WHERE name = %s", (row["name"],))

    # -- sources of a create --------------------------------------------------------------------
    @contextmanager
    def source(self, source: str, owner: str | None = None):
        """The snapshot `ns create --from SOURCE` copies, held for the block: a user snapshot of that name
        (locked, so it cannot go meanwhile), or one taken now of the live namespace of that name (dropped
        after). A name that is both is refused, as is one that is neither (BadInput: nothing made)."""
        if not isinstance(source, str) or not SNAPSHOT_NAME.fullmatch(source):
            raise BadInput(f"--from {source!r}: not a namespace or snapshot name")
        self.repair()
        with self._conn() as probe:
            snap = self._row(probe, source)
            live = self.namespaces._row(probe, source, owner)
        if snap is not None and (snap["kind"] != "user" or (owner is not None and snap["owner"] != owner)):
            snap = None
        if snap and live:
            raise BadInput(f"--from {source!r} names both a namespace and a snapshot: rename one "
                           f"(`localdev ns snapshot --delete {source}`)")
        if snap:
            with self._locked(source) as conn:
                row = self._row(conn, source)
                if row is None or row["state"] != "ready":
                    raise BadInput(f"--from {source!r}: that snapshot is gone or incomplete")
                self._intact(row, list(row["services"]), f"copy snapshot {source!r}", _RETAKE.format(name=source))
                yield row
            return
        if not live:
            raise BadInput(f"--from {source!r}: no namespace or snapshot has that name "
                           "(`localdev ns list`, `localdev ns snapshots`)")
        name = f"branch:{secrets.token_hex(6)}"
        with self._locked(name) as conn:
            with self.namespaces._locked(source) as ns_conn:
                row = self._source_row(ns_conn, source, owner)
                snap = self._take(conn, name, "branch", self.namespaces._namespace(row), list(row["services"]),
                                  False, owner)
            try:
                yield snap
            finally:
                self._delete_row(conn, snap)

    def fill_from(self, ns: Namespace, services: builtins.list[str], snap: dict) -> None:
        """A namespace being created (state `creating`) made from `snap`: each service's copy; a service the
        snapshot has no part for is created empty."""
        extra = [s for s in snap["services"] if s not in services]
        if extra:
            raise BadInput(f"snapshot {snap['name']!r} holds data of {', '.join(extra)}, which this cluster does "
                           "not run: enable it, or take the snapshot again")
        copiers = self._copiers([s for s in services if s in snap["parts"]], f"copy snapshot {snap['name']!r}")

        def one(svc):
            if svc.name in copiers:
                return copiers[svc.name].create(ns, snap["id"], snap["parts"][svc.name])
            return svc.create_namespace(ns)

        self.namespaces._for_services(services, one)

    # -- seeded creates -------------------------------------------------------------------------
    def seed_snapshot(self, seed_hash: str) -> dict | None:
        with self._conn() as conn:
            row = self._row(conn, f"seed:{seed_hash}")
        return row if row and row["state"] == "ready" else None

    def fill_seeded(self, ns: Namespace, services: builtins.list[str], fixtures, keep: bool = True) -> None:
        """A seeded create: copy the seed snapshot of this content if there is one, in the services where that
        is faster (`Copier.copies_seeds`; PostgreSQL keeps its template and spare clones); else replay, then
        keep what was made as that snapshot (unless not `keep`: an import, made once). Of creates of a content
        that has no snapshot yet, one replays and keeps it while the others wait, then copy it (several replays
        at once on a cold cluster each took longer than one replay and a copy). With `[namespaces]
        seed_snapshots = false` every create replays."""
        copying = self.cluster.config.namespaces.get("seed_snapshots", True)
        seed_hash = fixtures.content_hash
        snap = self.seed_snapshot(seed_hash) if copying else None
        if snap is not None or not (copying and keep):
            return self._fill(ns, services, fixtures, snap, keep=False)
        with self._conn() as conn, self._build_lock(conn, seed_hash, try_only=True) as mine:
            if mine:
                snap = self.seed_snapshot(seed_hash)  # (kept by another between the look and the lock)
                return self._fill(ns, services, fixtures, snap, keep=snap is None)
        snap = self._built(seed_hash)
        self._fill(ns, services, fixtures, snap, keep=snap is None)

    @staticmethod
    def _build_lock(conn, seed_hash: str, **kwargs):
        """Held by the one create that replays a content with no seed snapshot yet, until it has kept one."""
        return advisory_lock(conn, f"build:{seed_hash}", space=SNAPSHOTS, **kwargs)

    def being_built(self, seed_hash: str) -> bool:
        """Whether a create is making the seed snapshot of this content just now."""
        with self._conn() as conn, self._build_lock(conn, seed_hash, try_only=True) as free:
            return not free

    def _built(self, seed_hash: str) -> dict | None:
        """The seed snapshot another create is making of this content, once it is done; None if that create
        failed, or took over five minutes. Polled, a registry connection only for each look: a waiter that
        held one throughout (blocked on the build lock) took it from the pool the builder needs, and 32
        creates at once of a new content ran the pool dry."""
        from localdev.waiting import TimedOut, poll_until

        try:
            poll_until(lambda: not self.being_built(seed_hash), 300, "the seed snapshot being made",
                       interval=0.02, max_interval=0.1)
        except TimedOut:
            return None
        return self.seed_snapshot(seed_hash)

    def _fill(self, ns: Namespace, services: builtins.list[str], fixtures, snap: dict | None, keep: bool) -> None:
        parts = fixtures.per_service

        def one(svc):
            copier = self.copier(svc.name) if snap and svc.name in snap["parts"] else None
            if snap is not None and copier is not None and copier.copies_seeds:
                return copier.create(ns, snap["id"], snap["parts"][svc.name])
            make = partial(svc.create_seeded, ns, parts[svc.name]) if svc.name in parts else \
                partial(svc.create_namespace, ns)
            lost = getattr(copier, "lost", None)
            if snap is None or lost is None:
                return make()
            # Whether the service still holds the snapshot's part is asked beside the replay, not after it.
            with pool(2) as steps:
                env, gone = all_at_once(steps, [make, partial(lost, snap["id"], snap["parts"][svc.name])])
            if gone:
                self._retake(snap, ns, svc.name)  # beside the other services' creates, not after them
            return env

        self.namespaces._for_services(services, one)
        if keep:
            sql = parts.get("postgres")
            hints = {"postgres": {"template": sql.template, "template_owner": sql.owner}} if sql and sql.files else {}
            self._keep_seeded(ns, services, fixtures.content_hash, hints)

    def _keep_seeded(self, ns: Namespace, services: builtins.list[str], seed_hash: str, hints: dict) -> None:
        """Take the seed snapshot of a namespace just made (nobody can be connected yet: its credentials
        have not been handed out). One builder at a time; a cluster whose services cannot copy has none."""
        with_copier = [s for s in services if self.copier(s) is not None]
        if not with_copier:
            return
        name = f"seed:{seed_hash}"
        with self._conn() as conn, advisory_lock(conn, name, space=SNAPSHOTS, try_only=True) as mine:
            if not mine or self._row(conn, name):
                return
            self._take(conn, name, "seed", ns, with_copier, True, None, hints)
        self._forget_old_seeds()

    def _retake(self, snap: dict, ns: Namespace, service: str) -> None:
        """The part of the seed snapshot a service lost (an emulator restart), taken again from a namespace it
        just replayed the seeds into, and nobody is connected to yet. Skipped if another command holds the
        snapshot: a later create mends it."""
        with self._conn() as conn, advisory_lock(conn, snap["name"], space=SNAPSHOTS, try_only=True) as mine:
            if not mine or (row := self._row(conn, snap["name"])) is None or row["id"] != snap["id"]:
                return
            copier = self.copier(service)
            assert copier is not None
            copier.drop(snap["id"], row["parts"][service])
            part = copier.take(ns, snap["id"], True)
            conn.execute("UPDATE snapshots SET parts = jsonb_set(parts, %s::text[], %s::jsonb) WHERE name = %s",
                         ([service], json.dumps(part), snap["name"]))

    def _forget_old_seeds(self) -> None:
        """Free the seed snapshots no namespace can reset to, beyond the KEEP_SEEDS newest."""
        from psycopg.rows import dict_row

        with self._conn() as conn:
            rows = conn.cursor(row_factory=dict_row).execute(
                "SELECT * FROM snapshots s WHERE kind = 'seed' AND state = 'ready' AND NOT EXISTS "
                "(SELECT 1 FROM namespaces n WHERE 'seed:' || n.seed_hash = s.name) "
                "ORDER BY created_at DESC OFFSET %s", (KEEP_SEEDS,)).fetchall()
            for row in rows:
                with advisory_lock(conn, row["name"], space=SNAPSHOTS, try_only=True) as mine:
                    if mine:
                        self._delete_row(conn, row)

    # -- reset ---------------------------------------------------------------------------------
    def reset(self, namespace: str, to: str | None = None, owner: str | None = None) -> dict:
        """`ns reset NAME [--to SNAP]`: in place, same credentials and endpoints. Default: its seeded state
        (what its create made: the seed snapshot of its seed content, or nothing for an unseeded one)."""
        validate_name(namespace)
        if to is not None:
            validate_snapshot_name(to)
        self.repair()
        with self.namespaces._locked(namespace) as ns_conn:
            row = self.namespaces._ready_row(ns_conn, namespace, owner)
            ns = self.namespaces._namespace(row)
            services = list(row["services"])
            if to is not None:
                with self._locked(to) as conn:
                    snap = self._row(conn, to)
                    if snap is None or snap["kind"] != "user" or snap["state"] != "ready" or \
                            (owner is not None and snap["owner"] != owner):
                        raise BadInput(f"--to {to!r}: no snapshot has that name (`localdev ns snapshots`)")
                    self._intact(snap, services, f"reset namespace {namespace!r}", _RETAKE.format(name=to))
                    self._reset(ns_conn, ns, services, snap)
            elif row.get("seed_hash"):
                name = f"seed:{row['seed_hash']}"
                with self._locked(name) as conn:
                    snap = self._row(conn, name)
                    if snap is None or snap["state"] != "ready":
                        raise LocalDevError(f"namespace {namespace!r} has no recorded seeded state (it was created "
                                            f"before snapshots, or on a cluster that cannot copy): "
                                            f"`localdev seed {namespace}` applies the seeds again")
                    self._intact(snap, services, f"reset namespace {namespace!r}",
                                 f"`localdev seed {namespace} {{flags}}` puts the seeds back there; the next "
                                 "seeded create with these seeds records the seeded state whole again")
                    self._reset(ns_conn, ns, services, snap)
            else:
                self._reset(ns_conn, ns, services, None)
            return self.namespaces._info(self.namespaces._ready_row(ns_conn, namespace))

    def _reset(self, conn, ns: Namespace, services: builtins.list[str], snap: dict | None) -> None:
        copiers = self._copiers(services, f"reset namespace {ns.name!r}")
        if snap:
            extra = [s for s in snap["services"] if s not in services]
            if extra:
                raise BadInput(f"snapshot {snap['name']!r} holds data of {', '.join(extra)}, which namespace "
                               f"{ns.name!r} does not have")
        # Seen by `ns list` (degraded) if this is interrupted: the next reset finishes it.
        conn.execute("UPDATE namespaces SET problems = problems || %s WHERE name = %s",
                     (json.dumps({"reset": f"an interrupted reset: run `localdev ns reset {ns.name}` again"}),
                      ns.name))

        def one(service: str) -> None:
            part = snap["parts"].get(service) if snap else None
            copiers[service].reset(ns, snap["id"] if part is not None and snap else None, part)

        # One wave: a reset needs no service's part of another (the namespace's role and schema stay).
        _parallel(services, one, f"resetting namespace {ns.name!r}")
        conn.execute("UPDATE namespaces SET problems = problems - 'reset' WHERE name = %s", (ns.name,))


_RETAKE = ("Take it again: `localdev ns snapshot --delete {name}`, then "
           "`localdev ns snapshot NAMESPACE --as {name}`")


def _lost(copier: Copier | None, sid: str, part: dict) -> str | None:
    check = getattr(copier, "lost", None)
    return check(sid, part) if check is not None else None


_VALIDATED: OrderedDict[tuple, object] = OrderedDict()
_VALIDATED_LOCK = threading.Lock()


def load_fixtures(seeds_dir, services: builtins.list[str]):
    """`localdev.seeding.load_fixtures`, once per content: a set whose every file has the size and modification
    time it had when it was validated is not read again (a seeded create that copies its snapshot would
    otherwise spend longer validating 50 000 items than copying them). A changed file is validated anew."""
    from localdev.seeding import load_fixtures as load

    root = Path(seeds_dir).resolve()
    signature = tuple(sorted((str(p.relative_to(root)), st.st_size, st.st_mtime_ns)
                             for p in root.rglob("*") if p.is_file() and (st := p.stat())))
    key = (str(root), tuple(services), signature)
    with _VALIDATED_LOCK:
        if key in _VALIDATED:
            _VALIDATED.move_to_end(key)
            return _VALIDATED[key]
    fixtures = load(seeds_dir, services)
    with _VALIDATED_LOCK:
        _VALIDATED[key] = fixtures
        while len(_VALIDATED) > 16:
            _VALIDATED.popitem(last=False)
    return fixtures


def _parallel(names: builtins.list[str], fn, doing: str, done: dict | None = None) -> dict:
    """`fn(name)` for every name at once; {name: result}. Failures are raised after all have ended (BadInput as it
    is), the results of those that succeeded left in `done` first, for the caller's rollback."""
    done = {} if done is None else done
    with pool(len(names)) as steps:
        futures = {n: steps.submit(fn, n) for n in names}
    failed = [(n, f.exception()) for n, f in futures.items() if f.exception() is not None]
    done.update({n: f.result() for n, f in futures.items() if f.exception() is None})
    if failed:
        name, exc = failed[0]
        if isinstance(exc, BadInput):
            raise exc
        raise LocalDevError(f"{doing} failed in {name}: {exc}") from exc
    return done


@contextmanager
def _given(conn):
    yield conn


def _info(row: dict) -> dict:
    return {"name": row["name"], "kind": row["kind"], "state": row["state"], "source": row["source"],
            "created_at": row["created_at"].timestamp(), "services": list(row["services"])}

