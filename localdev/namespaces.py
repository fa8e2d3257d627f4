"""The namespace registry and API: create, list, env, delete, expire.

The registry is a table in the shared PostgreSQL (database `localdev`), so every process and CI runner
pointed at the cluster agrees. Work on one name is serialised by a PostgreSQL advisory lock held for
the whole create/delete: a crashed command's lock dies with its connection, so a row left in state
`creating`/`deleting` without a lock holder is an interrupted command, which the next command on that
name (create, delete, gc) rolls back.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

from localdev.errors import BadInput, Conflict, LocalDevError, NotFound
from localdev.names import Namespace, parse_labels, parse_ttl, validate_name
from localdev.services import waves

REGISTRY_DB = "localdev"
LOCK_CLASS = 0x10CA1DE  # first key of our advisory locks; the second is hashtext(name)
LOCK_WAIT = "120s"
ENV_KEYS = ("LOCALDEV_NAMESPACE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION",
            "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "DATABASE_URL", "PGHOST", "PGPORT", "PGUSER",
            "PGPASSWORD", "PGDATABASE", "MONGODB_URI")

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
"""


class Namespaces:
    """One implementation, two doors: the agent serves it over HTTP; tests and the pytest plugin import it."""

    def __init__(self, cluster):
        self.cluster = cluster
        self._pool = None
        self._pool_lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------------
    @property
    def postgres(self):
        return self.cluster.services["postgres"]

    def pool(self):
        with self._pool_lock:
            if self._pool is None:
                self._ensure_registry()
                self._pool = self.postgres.make_pool(REGISTRY_DB, 40, "localdev-registry")
            return self._pool

    def _ensure_registry(self) -> None:
        """Create the registry database and table once; concurrent first users (xdist workers) wait in line."""
        with self.postgres.connect() as conn:
            conn.execute("SELECT pg_advisory_lock(%s, 0)", (LOCK_CLASS,))
            try:
                if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (REGISTRY_DB,)).fetchone():
                    conn.execute(f"CREATE DATABASE {REGISTRY_DB}")
                conn.execute(f"REVOKE ALL ON DATABASE {REGISTRY_DB} FROM PUBLIC")
                with self.postgres.connect(REGISTRY_DB) as registry:
                    registry.execute(SCHEMA)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s, 0)", (LOCK_CLASS,))

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close(timeout=2)

    @contextmanager
    def _locked(self, name: str):
        """An advisory lock on `name` for the whole operation, on one pooled connection."""
        import psycopg

        with self.pool().connection() as conn:
            conn.execute(f"SET statement_timeout = '{LOCK_WAIT}'")
            try:
                conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (LOCK_CLASS, name))
            except psycopg.errors.QueryCanceled:
                raise Conflict(f"namespace {name!r} is busy: another command has held it for {LOCK_WAIT}") from None
            finally:
                conn.execute("SET statement_timeout = 0")
            try:
                yield conn
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (LOCK_CLASS, name))

    def _row(self, conn, name: str) -> dict | None:
        from psycopg.rows import dict_row

        cur = conn.cursor(row_factory=dict_row)
        return cur.execute("SELECT * FROM namespaces WHERE name = %s", (name,)).fetchone()

    def _services(self, names: list[str]):
        return [self.cluster.services[n] for n in names]

    # -- per-service work, in dependency waves, each wave in parallel --------------
    def _for_services(self, names: list[str], fn, reverse: bool = False) -> list:
        results, errors = [], []
        order = waves(names)
        for wave in (reversed(order) if reverse else order):
            with ThreadPoolExecutor(max_workers=len(wave)) as pool:
                futures = {n: pool.submit(fn, self.cluster.services[n]) for n in wave}
            for n, future in futures.items():
                try:
                    results.append(future.result())
                except Exception as exc:  # collect every service's failure, report them together
                    errors.append((n, exc))
            if errors:
                break
        if errors:
            raise _combined(errors)
        return results

    def _drop_everywhere(self, ns: Namespace, services: list[str]) -> None:
        def drop(svc):
            svc.drop_namespace(ns)

        errors = []
        for wave in reversed(waves(services)):  # dependants first (mongo's schema before postgres's role)
            with ThreadPoolExecutor(max_workers=len(wave)) as pool:
                futures = {n: pool.submit(drop, self.cluster.services[n]) for n in wave}
            errors += [(n, f.exception()) for n, f in futures.items() if f.exception()]
        if errors:
            raise _combined(errors, "dropping")

    # -- the API ---------------------------------------------------------------
    def create(self, name: str, ttl: str | int | None = "default", labels=None, exist_ok: bool = False,
               seed: bool = False, seeds_dir=None) -> dict:
        validate_name(name)
        ttl_seconds = self._ttl(ttl)
        labels = parse_labels(labels)
        services = list(self.cluster.service_names)
        fixtures = None
        if seed and seeds_dir:
            from localdev.seeding import load_fixtures

            fixtures = load_fixtures(seeds_dir, services)  # validated in full before anything is touched
        with self._locked(name) as conn:
            row = self._row(conn, name)
            if row and row["state"] == "ready":
                if exist_ok:
                    return self._info(row)
                raise Conflict(f"namespace {name!r} already exists: use another name, `localdev ns delete {name}` "
                               "first, or --exist-ok to reuse it")
            if row:  # an interrupted create or delete: finish rolling it back
                self._drop_everywhere(Namespace.from_secrets(name, row["secrets"]), row["services"])
                conn.execute("DELETE FROM namespaces WHERE name = %s", (name,))
            ns = Namespace(name=name, region=self.cluster.config.namespaces.get("region", "us-east-1"))
            expires = (datetime.now(timezone.utc) + timedelta(seconds=ttl_seconds)) if ttl_seconds else None
            conn.execute(
                "INSERT INTO namespaces (name, state, expires_at, labels, services, secrets) "
                "VALUES (%s, 'creating', %s, %s, %s, %s)",
                (name, expires, json.dumps(labels), services, json.dumps(ns.to_secrets())))
            try:
                seed_hash = fixtures.content_hash if fixtures else None
                parts = fixtures.per_service if fixtures else {}
                self._for_services(services, lambda svc: svc.create_seeded(ns, parts[svc.name])
                                   if svc.name in parts else svc.create_namespace(ns))
            except BaseException:
                try:
                    self._drop_everywhere(ns, services)
                    conn.execute("DELETE FROM namespaces WHERE name = %s", (name,))
                except Exception:
                    pass  # left in state 'creating': the next command on this name rolls it back
                raise
            conn.execute("UPDATE namespaces SET state = 'ready', seed_hash = %s WHERE name = %s", (seed_hash, name))
            return self._info(self._row(conn, name))

    def _seed(self, ns: Namespace, services: list[str], fixtures) -> str:
        from localdev.seeding import apply

        return apply(self.cluster, ns, services, fixtures)

    def seed(self, name: str, seeds_dir, services: list[str] | None = None) -> dict:
        """Apply the seeds again (to `services`, default all); first re-create whatever those services lost
        (idempotent creates), which also clears their recorded problems."""
        from localdev.seeding import load_fixtures

        validate_name(name)
        with self._locked(name) as conn:
            row = self._ready_row(conn, name)
            unknown = [s for s in services or [] if s not in row["services"]]
            if unknown:
                raise BadInput(f"namespace {name!r} has no service {unknown[0]!r}; it has: {', '.join(row['services'])}")
            targets = [s for s in row["services"] if not services or s in services]
            fixtures = load_fixtures(seeds_dir, targets)
            ns = Namespace.from_secrets(name, row["secrets"])
            self._for_services(targets, lambda svc: svc.create_namespace(ns))
            seed_hash = self._seed(ns, targets, fixtures)
            conn.execute("UPDATE namespaces SET seed_hash = %s, problems = problems - %s::text[] WHERE name = %s",
                         (seed_hash, targets, name))
            return self._info(self._row(conn, name))

    def verify(self, services: list[str]) -> dict[str, dict]:
        """Ask each of `services` whether every ready namespace's state survived; record what was lost.

        Returns {namespace: {service: problem}} for the namespaces with problems."""
        from psycopg.rows import dict_row

        with self.pool().connection() as conn:
            rows = conn.cursor(row_factory=dict_row).execute(
                "SELECT name, services, secrets FROM namespaces WHERE state = 'ready'").fetchall()
        checks = [(r["name"], svc, Namespace.from_secrets(r["name"], r["secrets"]))
                  for r in rows for svc in services if svc in r["services"]]
        if not checks:
            return {}
        with ThreadPoolExecutor(max_workers=min(8, len(checks))) as pool:
            found = list(pool.map(lambda c: self.cluster.services[c[1]].check_namespace(c[2]), checks))
        with self.pool().connection() as conn:
            for (name, svc, _), problem in zip(checks, found):
                if problem:
                    conn.execute("UPDATE namespaces SET problems = problems || jsonb_build_object(%s::text, %s::text) "
                                 "WHERE name = %s", (svc, problem, name))
                else:
                    conn.execute("UPDATE namespaces SET problems = problems - %s::text WHERE name = %s", (svc, name))
        out: dict[str, dict] = {}
        for (name, svc, _), problem in zip(checks, found):
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

    def _ready_row(self, conn, name: str) -> dict:
        row = self._row(conn, name)
        if row is None:
            raise NotFound(f"no namespace named {name!r}: `localdev ns list` shows the namespaces")
        if row["state"] != "ready":
            raise LocalDevError(f"namespace {name!r} is incomplete (an interrupted {row['state'][:-3]}e): "
                                f"`localdev ns delete {name}` removes it")
        return row

    def get(self, name: str) -> dict:
        validate_name(name)
        with self.pool().connection() as conn:
            row = self._row(conn, name)
        if row is None:
            raise NotFound(f"no namespace named {name!r}: `localdev ns list` shows the namespaces")
        return self._info(row)

    def env(self, name: str) -> dict[str, str]:
        validate_name(name)
        with self.pool().connection() as conn:
            row = self._ready_row(conn, name)
        return self._env(Namespace.from_secrets(name, row["secrets"]), row["services"])

    def _env(self, ns: Namespace, services: list[str]) -> dict[str, str]:
        env = {"LOCALDEV_NAMESPACE": ns.name}
        for name in services:
            env.update(self.cluster.services[name].namespace_env(ns))
        env.update({"AWS_ACCESS_KEY_ID": ns.aws_access_key_id, "AWS_SECRET_ACCESS_KEY": ns.aws_secret_access_key,
                    "AWS_REGION": ns.region, "AWS_DEFAULT_REGION": ns.region})
        return {k: env[k] for k in ENV_KEYS if k in env}

    def list(self) -> list[dict]:
        from psycopg.rows import dict_row

        with self.pool().connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            rows = cur.execute(
                "SELECT n.*, (n.state <> 'ready' AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory'"
                " AND l.classid::bigint = %s AND l.objid::bigint = (hashtext(n.name)::bigint & 4294967295)"
                " AND l.objsubid = 2)) AS interrupted FROM namespaces n ORDER BY n.created_at, n.name",
                (LOCK_CLASS,)).fetchall()
        return [self._info(r) for r in rows]

    def delete(self, name: str, missing_ok: bool = False) -> bool:
        validate_name(name)
        with self._locked(name) as conn:
            row = self._row(conn, name)
            if row is None:
                if missing_ok:
                    return False
                raise NotFound(f"no namespace named {name!r} (use --missing-ok to ignore that)")
            conn.execute("UPDATE namespaces SET state = 'deleting' WHERE name = %s", (name,))
            self._drop_everywhere(Namespace.from_secrets(name, row["secrets"]), row["services"])
            conn.execute("DELETE FROM namespaces WHERE name = %s", (name,))
            return True

    def expired(self) -> list[str]:
        """Expired namespaces, and interrupted creates/deletes (nobody holds their lock)."""
        return [n["name"] for n in self.list()
                if n["state"] == "interrupted" or (n["expires_at"] and n["expires_at"] <= time.time())]

    def gc(self, dry_run: bool = False) -> list[str]:
        names = self.expired()
        if dry_run:
            return names
        removed = []
        for name in names:
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
                "expires_at": expires, "labels": row["labels"], "services": list(row["services"]),
                "seed_hash": row.get("seed_hash"), "problems": problems}


def _combined(errors: list[tuple[str, BaseException]], doing: str = "creating") -> LocalDevError:
    for _, exc in errors:
        if isinstance(exc, BadInput):
            return exc
    text = "; ".join(f"{n}: {exc}" for n, exc in errors)
    err = LocalDevError(f"{doing} the namespace failed in {text}")
    err.__cause__ = errors[0][1]
    return err
