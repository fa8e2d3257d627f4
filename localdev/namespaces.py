"""The namespace registry and API: create, list, env, delete, expire.

The registry is a table in the shared PostgreSQL (database `localdev`), so every process and CI runner
pointed at the cluster agrees. Work on one name is serialised by a PostgreSQL advisory lock held for
the whole create/delete: a crashed command's lock dies with its connection, so a row left in state
`creating`/`deleting` without a lock holder is an interrupted command, which the next command on that
name (create, delete, gc) rolls back.
"""

from __future__ import annotations

import builtins
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta

from localdev.allocator import give_back_freed_memory
from localdev.errors import BadInput, Conflict, LocalDevError, NotFound
from localdev.gateway.ownership import SCHEMA as GATEWAY_SCHEMA
from localdev.names import Namespace, parse_labels, parse_ttl, validate_max_connections, validate_name
from localdev.seedpack import SCHEMA as SEEDS_SCHEMA
from localdev.services import in_waves
from localdev.services.base import CA_FILE
from localdev.services.postgres import PROCESS_ID
from localdev.services.postgres.locks import NAMESPACES, LockTimeout, advisory_lock
from localdev.tokens import SCHEMA as TOKENS_SCHEMA
from localdev.tokens import Tokens

REGISTRY_DB = "localdev"
LOCK_WAIT = "120s"
# Every namespace command holds one registry connection for its whole run, so this bounds concurrent
# commands. The PostgreSQL service reserves superuser slots for it (superuser_reserved_connections).
REGISTRY_POOL = 40

SCHEMA = """
CREATE TABLE IF NOT EXISTS namespaces (
    name        text PRIMARY KEY,
    state       text NOT NULL CHECK (state IN ('creating', 'ready', 'deleting')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    labels      jsonb NOT NULL DEFAULT '{}',
    services    text[] NOT NULL,
    secrets     jsonb NOT NULL,
    seed_hash   text
);
CREATE INDEX IF NOT EXISTS namespaces_expires_at ON namespaces (expires_at);
-- service -> what it lost (e.g. an in-memory emulator restarted); cleared by `localdev seed`
ALTER TABLE namespaces ADD COLUMN IF NOT EXISTS problems jsonb NOT NULL DEFAULT '{}';
ALTER TABLE namespaces ADD COLUMN IF NOT EXISTS region text NOT NULL DEFAULT 'us-east-1';
-- the token that created it (team mode): a ci token sees only its own; NULL for local users and old rows
ALTER TABLE namespaces ADD COLUMN IF NOT EXISTS owner text;
-- the connection budget set on the namespace's role at create (the config default then, or --max-connections).
-- NULL for rows from before: their roles have no limit, and reading NULL as today's default would show
-- a limit PostgreSQL does not enforce.
ALTER TABLE namespaces ADD COLUMN IF NOT EXISTS max_connections integer;
-- the process (localdev.services.postgres.PROCESS_ID) creating or deleting it: if that process dies, the agent
-- that rolls the namespace back first ends its statements still running in PostgreSQL
ALTER TABLE namespaces ADD COLUMN IF NOT EXISTS agent text;
-- Secrets are {group: {key: value}}, as services declare them. Rows from before held fixed fields
-- (pg_password, which the Mongo service used too, the AWS key pair and the region): move them over.
UPDATE namespaces SET region = COALESCE(secrets->>'region', region), secrets = jsonb_build_object(
        'postgres', jsonb_build_object('password', secrets->'pg_password'),
        'mongo', jsonb_build_object('password', secrets->'pg_password'),
        'aws', jsonb_build_object('access_key_id', secrets->'aws_access_key_id',
                                  'secret_access_key', secrets->'aws_secret_access_key'))
    WHERE secrets ? 'pg_password';
"""


class Namespaces:
    """One implementation, two doors: the agent serves it over HTTP; tests and the pytest plugin import it."""

    def __init__(self, cluster):
        self.cluster = cluster
        self._pool = None
        self._pool_lock = threading.Lock()
        self._snapshots = None

    # -- plumbing ---------------------------------------------------------------
    @property
    def postgres(self):
        return self.cluster.services["postgres"]

    def pool(self):
        with self._pool_lock:
            if self._pool is None:
                self._ensure_registry()
                self._pool = self.postgres.make_pool(REGISTRY_DB, REGISTRY_POOL, "localdev-registry")
            return self._pool

    def _ensure_registry(self) -> None:
        """Create the registry database and table once; concurrent first users (xdist workers) wait in line."""
        with self.postgres.connect() as conn, advisory_lock(conn, "registry"):
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (REGISTRY_DB,)).fetchone():
                conn.execute(f"CREATE DATABASE {REGISTRY_DB}")
            conn.execute(f"REVOKE ALL ON DATABASE {REGISTRY_DB} FROM PUBLIC")
            with self.postgres.connect(REGISTRY_DB) as registry:
                # one simple query: one transaction, so the migration is whole or not at all
                registry.execute(SCHEMA + TOKENS_SCHEMA + GATEWAY_SCHEMA + SEEDS_SCHEMA)

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close(timeout=2)

    @contextmanager
    def _locked(self, name: str):
        """An advisory lock on `name` for the whole operation, on one pooled connection."""
        with self.pool().connection() as conn:
            try:
                with advisory_lock(conn, name, space=NAMESPACES, timeout=LOCK_WAIT):
                    yield conn
            except LockTimeout:  # only the lock's own wait raises it
                raise Conflict(f"namespace {name!r} is busy: another command has held it for {LOCK_WAIT}") from None

    def _row(self, conn, name: str, owner: str | None = None) -> dict | None:
        """The registry row of `name`; None if absent or, given an `owner`, if someone else's (a ci token
        must not learn that another token's namespace exists)."""
        from psycopg.rows import dict_row

        cur = conn.cursor(row_factory=dict_row)
        row = cur.execute("SELECT * FROM namespaces WHERE name = %s", (name,)).fetchone()
        return None if row is None or (owner is not None and row["owner"] != owner) else row

    @property
    def snapshots(self):
        from localdev.snapshots import Snapshots

        with self._pool_lock:
            if self._snapshots is None:
                self._snapshots = Snapshots(self)
            return self._snapshots

    @property
    def tokens(self) -> Tokens:
        return Tokens(self.pool)

    def _namespace(self, row: dict) -> Namespace:
        return Namespace(name=row["name"], region=row["region"], secrets=row["secrets"],
                         max_connections=row.get("max_connections"))

    # -- per-service work, in dependency waves, each wave in parallel --------------
    def _for_services(self, names: builtins.list[str], fn) -> None:
        """`fn(service)` for each; the first wave with a failure ends it (later services need earlier ones)."""
        in_waves(names, lambda n: fn(self.cluster.services[n]), combine=_combined, depends=self._depends)

    def _drop_everywhere(self, ns: Namespace, services: builtins.list[str]) -> None:
        """Dependants first (mongo's schema before postgres's role); every service is tried, whatever failed."""
        in_waves(services, lambda n: self.cluster.services[n].drop_namespace(ns), dependants_first=True,
                 keep_going=True, combine=lambda errors: _combined(errors, "dropping"), depends=self._depends)

    def _depends(self, service: str) -> tuple[str, ...]:
        return self.cluster.services[service].needs

    # -- the API ---------------------------------------------------------------
    def create(self, name: str, ttl: str | int | None = "default", labels=None, exist_ok: bool = False,
               seed: bool = False, seeds_dir=None, owner: str | None = None,
               max_connections: int | None = None, from_: str | None = None, secrets: dict | None = None,
               region: str | None = None, keep_seed_snapshot: bool = True) -> dict:
        """`owner`: the ci token creating it (only it sees the namespace then). `max_connections`: its
        connection budget (default: [namespaces] max_connections); an existing namespace keeps its own.
        `from_`: a live namespace or a snapshot whose data it starts with (localdev/snapshots.py).
        `secrets`, `region`: a restore's, so the namespace comes back with its old credentials.
        `keep_seed_snapshot`: False for content made once (an import): no seed snapshot is kept of it."""
        validate_name(name)
        if max_connections is None:
            max_connections = self.cluster.config.namespaces.get("max_connections", 20)
        max_connections = validate_max_connections(max_connections)
        ttl_seconds = self._ttl(ttl)
        labels = parse_labels(labels)
        services = list(self.cluster.service_names)
        fixtures = None
        if seed and seeds_dir and from_ is None:
            from localdev.snapshots import load_fixtures

            fixtures = load_fixtures(seeds_dir, services)  # validated in full (once per content) before anything
        with self._locked(name) as conn, ExitStack() as source:
            row = self._row(conn, name)
            if row and owner is not None and row["owner"] != owner:
                raise Conflict(f"the name {name!r} is taken: choose another")
            if row and row["state"] == "ready" and from_ is not None:
                raise BadInput(f"namespace {name!r} already exists: choose another name for the copy")
            if row and row["state"] == "ready":
                if exist_ok:
                    return self._info(row)
                raise Conflict(f"namespace {name!r} already exists: use another name, `localdev ns delete {name}` "
                               "first, or --exist-ok to reuse it")
            if row:  # an interrupted create or delete: finish rolling it back
                self._roll_back(conn, row)
            snap = source.enter_context(self.snapshots.source(from_, owner)) if from_ is not None else None
            ns = Namespace.new(name, region or self.cluster.config.namespaces.get("region", "us-east-1"),
                               [secret for n in services for secret in self.cluster.services[n].secrets],
                               max_connections=max_connections, kept=secrets)
            expires = (datetime.now(UTC) + timedelta(seconds=ttl_seconds)) if ttl_seconds else None
            conn.execute(
                "INSERT INTO namespaces (name, state, expires_at, labels, services, secrets, region, owner, "
                "max_connections, agent) VALUES (%s, 'creating', %s, %s, %s, %s, %s, %s, %s, %s)",
                (name, expires, json.dumps(labels), services, json.dumps(ns.secrets), ns.region, owner,
                 max_connections, PROCESS_ID))
            try:
                seed_hash = fixtures.content_hash if fixtures and not snap else None
                if snap is not None:
                    self.snapshots.fill_from(ns, services, snap)
                elif fixtures:  # the first create of this content replays it; later ones copy its snapshot
                    self.snapshots.fill_seeded(ns, services, fixtures, keep=keep_seed_snapshot)
                else:
                    self._for_services(services, lambda svc: svc.create_namespace(ns))
            except BaseException:
                try:
                    self._drop_everywhere(ns, services)
                    conn.execute("DELETE FROM namespaces WHERE name = %s", (name,))
                except Exception:
                    pass  # left in state 'creating': the next command on this name rolls it back
                raise
            # The row comes back with the update: once 'ready' is committed, no further query of this create
            # may fail it (a server restarting there made a client see an error for a namespace that exists).
            from psycopg.rows import dict_row

            made = conn.cursor(row_factory=dict_row).execute(
                "UPDATE namespaces SET state = 'ready', seed_hash = %s WHERE name = %s RETURNING *",
                (seed_hash, name)).fetchone()
            return self._info(made)

    def _seed(self, ns: Namespace, services: builtins.list[str], fixtures) -> str:
        from localdev.seeding import apply

        return apply(self.cluster, ns, services, fixtures)

    def seed(self, name: str, seeds_dir, services: builtins.list[str] | None = None, owner: str | None = None) -> dict:
        """Apply the seeds again (to `services`, default all); first re-create whatever those services lost
        (idempotent creates), which also clears their recorded problems."""
        from localdev.seeding import load_fixtures

        validate_name(name)
        with self._locked(name) as conn:
            row = self._ready_row(conn, name, owner)
            unknown = [s for s in services or [] if s not in row["services"]]
            if unknown:
                raise BadInput(f"namespace {name!r} has no service {unknown[0]!r}; "
                               f"it has: {', '.join(row['services'])}")
            targets = [s for s in row["services"] if not services or s in services]
            fixtures = load_fixtures(seeds_dir, targets)
            ns = self._namespace(row)
            self._for_services(targets, lambda svc: svc.create_namespace(ns))
            seed_hash = self._seed(ns, targets, fixtures)
            conn.execute("UPDATE namespaces SET seed_hash = %s, problems = problems - %s::text[] WHERE name = %s",
                         (seed_hash, targets, name))
            return self._info(self._ready_row(conn, name))

    # -- exports, backups (localdev/exports.py, localdev/backups.py) ------------------------
    def namespace_for_export(self, name: str, owner: str | None = None) -> tuple[Namespace, builtins.list[str]]:
        validate_name(name)
        with self.pool().connection() as conn:
            row = self._ready_row(conn, name, owner)
        return self._namespace(row), builtins.list(row["services"])

    def check_free(self, name: str, restore: dict | None = None) -> None:
        """BadInput if `name` is taken (or, for a restore, its AWS key is another namespace's)."""
        validate_name(name)
        with self.pool().connection() as conn:
            row = self._row(conn, name)
            # (a row left 'creating' or 'deleting' is an interrupted command's: create() rolls it back)
            if row is not None and row["state"] == "ready":
                raise BadInput(f"the name {name!r} is taken: choose another, or `localdev ns delete {name}` first")
            key = ((restore or {}).get("secrets") or {}).get("aws", {}).get("access_key_id")
            taken = key and conn.execute("SELECT name FROM namespaces WHERE secrets->'aws'->>'access_key_id' = %s",
                                         (key,)).fetchone()
            if taken:
                raise BadInput(f"namespace {name!r} cannot get its old AWS access key back: namespace "
                               f"{taken[0]!r} of this cluster has it")

    def verify(self, services: builtins.list[str]) -> dict[str, dict]:
        """Ask each of `services` whether every ready namespace's state survived; record what was lost.

        Returns {namespace: {service: problem}} for the namespaces with problems."""
        from psycopg.rows import dict_row

        with self.pool().connection() as conn:
            rows = conn.cursor(row_factory=dict_row).execute(
                "SELECT name, services, secrets, region FROM namespaces WHERE state = 'ready'").fetchall()
        checks = [(r["name"], svc, self._namespace(r))
                  for r in rows for svc in services if svc in r["services"]]
        if not checks:
            return {}
        with ThreadPoolExecutor(max_workers=min(8, len(checks))) as pool:
            found = list(pool.map(lambda c: self.cluster.services[c[1]].check_namespace(c[2]), checks))
        with self.pool().connection() as conn:
            for (name, svc, _), problem in zip(checks, found, strict=True):
                if problem:
                    conn.execute("UPDATE namespaces SET problems = problems || jsonb_build_object(%s::text, %s::text) "
                                 "WHERE name = %s", (svc, problem, name))
                else:
                    conn.execute("UPDATE namespaces SET problems = problems - %s::text WHERE name = %s", (svc, name))
        out: dict[str, dict] = {}
        for (name, svc, _), problem in zip(checks, found, strict=True):
            if problem:
                out.setdefault(name, {})[svc] = problem
        return out

    def problems(self) -> dict[str, dict]:
        with self.pool().connection() as conn:
            rows = conn.execute("SELECT name, problems FROM namespaces WHERE problems <> '{}' ORDER BY name").fetchall()
        return {name: problems for name, problems in rows}

    def _ttl(self, ttl) -> int | None:
        if ttl == "default":
            return self.cluster.config.default_ttl
        if isinstance(ttl, int) and not isinstance(ttl, bool):
            if ttl <= 0:
                raise BadInput(f"invalid TTL {ttl!r}: must be positive")
            return ttl
        return parse_ttl(ttl)

    def _ready_row(self, conn, name: str, owner: str | None = None) -> dict:
        row = self._row(conn, name, owner)
        if row is None:
            raise NotFound(f"no namespace named {name!r}: `localdev ns list` shows the namespaces")
        if row["state"] != "ready":
            raise LocalDevError(f"namespace {name!r} is incomplete (an interrupted {row['state'][:-3]}e): "
                                f"`localdev ns delete {name}` removes it")
        return row

    def get(self, name: str, owner: str | None = None) -> dict:
        validate_name(name)
        with self.pool().connection() as conn:
            row = self._row(conn, name, owner)
        if row is None:
            raise NotFound(f"no namespace named {name!r}: `localdev ns list` shows the namespaces")
        return self._info(row)

    def env(self, name: str, owner: str | None = None, ca_file: str | None = "here") -> dict[str, str]:
        """`ca_file`: what stands for the cluster CA's certificate file in TLS settings: "here" is this
        machine's copy; None keeps the placeholder for a remote client to fill with its pinned copy."""
        validate_name(name)
        with self.pool().connection() as conn:
            row = self._ready_row(conn, name, owner)
        env = self._env(self._namespace(row), row["services"])
        if ca_file is not None:
            from localdev.tls import tls_dir

            path = str(tls_dir(self.cluster.state) / "ca.pem") if ca_file == "here" else ca_file
            env = {k: v.replace(CA_FILE, path) for k, v in env.items()}
        return env

    def secret_values(self, name: str, owner: str | None = None) -> builtins.list[str]:
        """Every secret the namespace holds (as its settings carry them), for a CI log to mask."""
        validate_name(name)
        with self.pool().connection() as conn:
            row = self._ready_row(conn, name, owner)
        return sorted({v for group in row["secrets"].values() for v in group.values() if v})

    def sizes(self, owner: str | None = None) -> dict[str, dict[str, int]]:
        """{namespace: {service: bytes}} for the ready namespaces, as far as each service can tell cheaply;
        a service that fails to answer is left out (the dashboard shows its sizes as unknown)."""
        from psycopg.rows import dict_row

        with self.pool().connection() as conn:
            rows = conn.cursor(row_factory=dict_row).execute(
                "SELECT name, services, secrets, region FROM namespaces WHERE state = 'ready'"
                " AND (%s::text IS NULL OR owner = %s)", (owner, owner)).fetchall()
        out: dict[str, dict[str, int]] = {r["name"]: {} for r in rows}
        for service in self.cluster.service_names:
            members = [self._namespace(r) for r in rows if service in r["services"]]
            try:
                found = self.cluster.services[service].namespace_sizes(members) if members else {}
            except Exception:  # a service restarting: unknown this time
                continue
            for name, size in found.items():
                out[name][service] = size
        return out

    def _env(self, ns: Namespace, services: builtins.list[str]) -> dict[str, str]:
        """The union of what each service contributes; a key a service did not declare is its bug, said loudly."""
        env = {"LOCALDEV_NAMESPACE": ns.name}
        for name in services:
            svc = self.cluster.services[name]
            contributed = svc.namespace_env(ns)
            undeclared = sorted(set(contributed) - set(svc.env_keys))
            if undeclared:
                raise LocalDevError(f"the {name} service returned env keys it does not declare in env_keys: "
                                    f"{', '.join(undeclared)}")
            for key, value in contributed.items():
                if env.setdefault(key, value) != value:
                    raise LocalDevError(f"services disagree on {key} for namespace {ns.name!r} ({name} differs)")
        return env

    def list(self, owner: str | None = None) -> builtins.list[dict]:
        from psycopg.rows import dict_row

        with self.pool().connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            rows = cur.execute(
                "SELECT n.*, (n.state <> 'ready' AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory'"
                " AND l.classid::bigint = %s AND l.objid::bigint = (hashtext(n.name)::bigint & 4294967295)"
                " AND l.objsubid = 2)) AS interrupted FROM namespaces n WHERE %s::text IS NULL OR n.owner = %s"
                " ORDER BY n.created_at, n.name", (NAMESPACES, owner, owner)).fetchall()
        return [self._info(r) for r in rows]

    def delete(self, name: str, missing_ok: bool = False, owner: str | None = None) -> bool:
        validate_name(name)
        with self._locked(name) as conn:
            row = self._row(conn, name, owner)
            if row is None:
                if missing_ok:
                    return False
                raise NotFound(f"no namespace named {name!r} (use --missing-ok to ignore that)")
            if row["state"] != "ready":  # interrupted: whoever was at it may have left statements running
                self._roll_back(conn, row)
                return True
            conn.execute("UPDATE namespaces SET state = 'deleting', agent = %s WHERE name = %s", (PROCESS_ID, name))
            self._drop_everywhere(self._namespace(row), row["services"])
            conn.execute("DELETE FROM namespaces WHERE name = %s", (name,))
        give_back_freed_memory()  # what the namespace's requests freed on worker threads (localdev.allocator)
        return True

    def _roll_back(self, conn, row: dict) -> None:
        """Remove what an interrupted create or delete left (the caller holds the name's lock, so nobody is at
        it): first the statements the interrupted process still runs in PostgreSQL, if it died (an agent killed
        mid-create, on this machine or another), so none of them finishes after this and leaves its work."""
        if row.get("agent"):
            self.postgres.end_statements_of(row["agent"])
        self._drop_everywhere(self._namespace(row), row["services"])
        conn.execute("DELETE FROM namespaces WHERE name = %s", (row["name"],))

    def expired(self) -> builtins.list[str]:
        """Expired namespaces, and interrupted creates/deletes (nobody holds their lock)."""
        return [n["name"] for n in self.list()
                if n["state"] == "interrupted" or (n["expires_at"] and n["expires_at"] <= time.time())]

    def gc(self, dry_run: bool = False, wait: bool = True) -> builtins.list[str] | None:
        """Delete the expired and interrupted namespaces. One collector at a time among every process and agent
        sharing the registry (a lock in it, not timing): `wait` False (the agent's reaper) returns None at once
        if another holds it; True (`ns gc`) waits for it, then collects what is left."""
        if dry_run:
            return self.expired()
        with self.pool().connection() as conn, advisory_lock(conn, "reaper", try_only=not wait,
                                                             timeout=None if not wait else LOCK_WAIT) as held:
            if not held:
                return None
            removed = []
            for name in self.expired():
                try:
                    if self.delete(name, missing_ok=True):
                        removed.append(name)
                except Conflict:
                    continue  # busy: someone else is working on it; the next round takes it
            return removed

    # -- presentation (no secrets) -----------------------------------------------------
    @staticmethod
    def _info(row: dict) -> dict:
        problems = row.get("problems") or {}
        state = "interrupted" if row.get("interrupted") else ("degraded" if problems else row["state"])
        expires = row["expires_at"].timestamp() if row["expires_at"] else None
        return {"name": row["name"], "state": state, "created_at": row["created_at"].timestamp(),
                "owner": row.get("owner"),
                "expires_at": expires, "labels": row["labels"], "services": list(row["services"]),
                "seed_hash": row.get("seed_hash"), "problems": problems,
                "max_connections": row.get("max_connections")}


def _combined(errors: list[tuple[str, BaseException]], doing: str = "creating") -> LocalDevError:
    for _, exc in errors:
        if isinstance(exc, BadInput):
            return exc
    text = "; ".join(f"{n}: {exc}" for n, exc in errors)
    err = LocalDevError(f"{doing} the namespace failed in {text}")
    err.__cause__ = errors[0][1]  # the agent's log shows the first failure's traceback
    return err
