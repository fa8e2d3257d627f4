"""Spare databases: a few clones of each template made ahead of need, so `ns create` renames one (a catalog
update) instead of copying a database on the request's path: CREATE DATABASE is quick on an idle disk and
ten times slower on a busy one (other services seeding; bench/results/design-measurements.md).

A spare is a database `localdev_spare_<key>_<random>` and a NOLOGIN role of the same name that owns it and
everything in it (the seed role's objects are reassigned to it when the spare is made), key being the
template's hash or `blank` for template1. A create renames both to the namespace's name in one transaction,
so the namespace's role owns its tables from the first moment: no connection to the new database, no
REASSIGN OWNED on the request's path. A spare is built under a `localdev_filling_` name and renamed once
whole, so a half-made one is never claimed (the next filler drops it). Until it is claimed nobody may
connect to it (ALLOW_CONNECTIONS false, CONNECT revoked from PUBLIC), so a claimed spare is exactly a fresh
clone. Spares are an optimisation: any failure here falls back to CREATE DATABASE.
"""

from __future__ import annotations

import logging
import secrets
import threading

from localdev.services.postgres.locks import advisory_lock

PREFIX = "localdev_spare_"
FILLING = "localdev_filling_"
KEEP = 2  # per template: enough for creates that come back to back while the refill runs

log = logging.getLogger(__name__)


def key_of(template: str | None) -> str:
    return template.removeprefix("localdev_tpl_")[:16] if template else "blank"


def seed_owner(template: str | None) -> str | None:
    """The NOLOGIN role owning the objects of a seed template (localdev.services.postgres.seeds.SqlSeeds)."""
    return "localdev_seed_" + template.removeprefix("localdev_tpl_") if template else None


def _pattern(key: str, prefix: str = PREFIX) -> str:
    return (prefix + key + "_").replace("_", "\\_") + "%"


def _names(conn, key: str) -> list[str]:
    """The spares of `key` this connection's role may claim or drop (it owns them, or is superuser), oldest
    first: agents logged in as different roles on one server (a superuser's and a managed admin's) each keep
    their own. Only spares with their role: a database of an older localdev's spare has none."""
    return [r[0] for r in conn.execute("SELECT d.datname FROM pg_database d JOIN pg_roles r ON r.rolname = d.datname "
                                       "WHERE d.datname LIKE %s AND pg_has_role(current_user, d.datdba, 'MEMBER') "
                                       "ORDER BY d.oid", (_pattern(key),)).fetchall()]


def clone_sql(name: str, template: str | None, owner: str | None = None, closed: bool = False,
              strategy: str = "WAL_LOG"):
    """CREATE DATABASE for a namespace or a spare: a copy of `template` (template1 if None). `closed`: nobody may
    connect from its first moment (a spare), not only once a later statement says so: the process making it
    may die between the two. `strategy`: Postgres.clone_strategy's."""
    from psycopg import sql

    query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if owner:
        query += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
    if template:
        query += sql.SQL(" TEMPLATE {} STRATEGY {}").format(sql.Identifier(template), sql.SQL(strategy))
    if closed:
        query += sql.SQL(" ALLOW_CONNECTIONS false")
    return query


class Spares:
    def __init__(self, pg):
        self.pg = pg
        self._filling: set[str] = set()
        self._lock = threading.Lock()

    def claim(self, conn, template: str | None, name: str) -> bool:
        """Rename a spare of `template` and its role to `name` (on an autocommit admin connection), in one
        transaction; False if none is left. The role is then still NOLOGIN, without a password: the caller
        sets them."""
        import psycopg
        from psycopg import sql

        for spare in _names(conn, key_of(template)):
            # Two creates renaming one spare at once: the second fails with "tuple concurrently updated",
            # an internal error. So one claimer per spare; the others move on to the next.
            with advisory_lock(conn, spare, try_only=True) as mine:
                if not mine:
                    continue
                try:
                    with conn.transaction():
                        conn.execute(sql.SQL("ALTER ROLE {} RENAME TO {}").format(sql.Identifier(spare),
                                                                                  sql.Identifier(name)))
                        conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(spare),
                                                                                      sql.Identifier(name)))
                        conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true")
                                     .format(sql.Identifier(name)))
                except (psycopg.errors.InvalidCatalogName, psycopg.errors.UndefinedObject,
                        psycopg.errors.ObjectInUse):
                    continue  # claimed by a create that finished meanwhile, or someone is connected to it
            return True
        return False

    def refill(self, template: str | None) -> None:
        """Make spares of `template` up to KEEP, in the background (one filler per template and process)."""
        key = key_of(template)
        with self._lock:
            if key in self._filling:
                return
            self._filling.add(key)
        threading.Thread(target=self._fill, args=(template, key), name=f"pg-spares-{key}", daemon=True).start()

    def _fill(self, template: str | None, key: str) -> None:
        try:
            # Another process (the agent beside an in-process API) may be filling: one is enough.
            with self.pg.connect() as conn, advisory_lock(conn, PREFIX + key, try_only=True) as held:
                if not held:
                    return
                _drop_all(conn, key, FILLING)  # left half-made by a filler that died: nobody else fills this key
                _drop_databases_without_role(conn, key)
                while len(_names(conn, key)) < KEEP:
                    self._make(conn, template, key)
        except Exception as exc:  # the template was dropped meanwhile, the server stopped, ...: no spare then
            log.info("no spare databases for %s: %s", key, exc)
        finally:
            with self._lock:
                self._filling.discard(key)

    def _make(self, conn, template: str | None, key: str) -> None:
        from psycopg import sql

        suffix = f"{key}_{secrets.token_hex(4)}"
        filling, spare = sql.Identifier(FILLING + suffix), sql.Identifier(PREFIX + suffix)
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(filling))
        self.pg.join_role(conn, FILLING + suffix)  # a managed admin lists, claims and drops spares as its member
        conn.execute(clone_sql(FILLING + suffix, template, owner=FILLING + suffix, closed=True,
                               strategy=self.pg.clone_strategy(conn)))
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(filling))
        if (owner := seed_owner(template)) is not None:
            self.pg.join_role(conn, owner)  # REASSIGN OWNED needs it, for a template another role built
            conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(filling))
            with self.pg.connect(FILLING + suffix) as inside:
                inside.execute(sql.SQL("REASSIGN OWNED BY {} TO {}").format(sql.Identifier(owner), filling))
                inside.execute(sql.SQL("REVOKE ALL ON SCHEMA public FROM {}").format(sql.Identifier(owner)))
            # REASSIGN OWNED also hands over what the seed role owns outside this database: nothing but
            # templates' privileges, which are not ownership; close the spare again.
            conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(filling))
        with conn.transaction():  # whole: now a claimer may take it
            conn.execute(sql.SQL("ALTER ROLE {} RENAME TO {}").format(filling, spare))
            conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(filling, spare))

    @staticmethod
    def drop(conn, template: str | None) -> None:
        """Drop the spares of a template that is going away."""
        for prefix in (PREFIX, FILLING):
            _drop_all(conn, key_of(template), prefix)


def _drop_all(conn, key: str, prefix: str) -> None:
    """Every spare database of `key` under `prefix` this role may drop, and the roles of those names."""
    from psycopg import sql

    for name in [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s AND "
                                            "pg_has_role(current_user, datdba, 'MEMBER')",
                                            (_pattern(key, prefix),)).fetchall()]:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    for name in [r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s AND "
                                            "pg_has_role(current_user, oid, 'MEMBER')",
                                            (_pattern(key, prefix),)).fetchall()]:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def _drop_databases_without_role(conn, key: str) -> None:
    """Spares an older localdev made (owned by the admin, objects by the seed role): a claim now needs the
    spare's own role, so they would only take up room."""
    from psycopg import sql

    for name in [r[0] for r in conn.execute(
            "SELECT datname FROM pg_database d WHERE datname LIKE %s AND pg_has_role(current_user, datdba, 'MEMBER') "
            "AND NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = d.datname)", (_pattern(key),)).fetchall()]:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
