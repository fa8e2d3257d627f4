"""Spare databases: a few clones of each template made ahead of need, so `ns create` renames one (a catalog
update) instead of copying a database on the request's path: CREATE DATABASE is quick on an idle disk and
ten times slower on a busy one (other services seeding; bench/results/design-measurements.md).

A spare is `localdev_spare_<key>_<random>`, key being the template's hash or `blank` for template1. Until it
is claimed nobody may connect to it (ALLOW_CONNECTIONS false, CONNECT revoked from PUBLIC), so a claimed
spare is exactly a fresh clone. Spares are an optimisation: any failure here falls back to CREATE DATABASE.
"""

from __future__ import annotations

import logging
import secrets
import threading

from localdev.services.postgres.locks import advisory_lock

PREFIX = "localdev_spare_"
KEEP = 2  # per template: enough for creates that come back to back while the refill runs

log = logging.getLogger(__name__)


def key_of(template: str | None) -> str:
    return template.removeprefix("localdev_tpl_")[:16] if template else "blank"


def _pattern(key: str) -> str:
    return (PREFIX + key + "_").replace("_", "\\_") + "%"


def _names(conn, key: str) -> list[str]:
    """The spares of `key` this connection's role may claim or drop (it owns them, or is superuser), oldest
    first: agents logged in as different roles on one server (a superuser's and a managed admin's) each keep
    their own."""
    return [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s "
                                       "AND pg_has_role(current_user, datdba, 'MEMBER') ORDER BY oid",
                                       (_pattern(key),)).fetchall()]


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

    def claim(self, conn, template: str | None, db_name: str) -> bool:
        """Rename a spare of `template` to `db_name` (on an autocommit admin connection); False if none is left."""
        import psycopg
        from psycopg import sql

        for spare in _names(conn, key_of(template)):
            # Two creates renaming one spare at once: the second fails with "tuple concurrently updated",
            # an internal error. So one claimer per spare; the others move on to the next.
            with advisory_lock(conn, spare, try_only=True) as mine:
                if not mine:
                    continue
                try:
                    conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(spare),
                                                                                sql.Identifier(db_name)))
                except (psycopg.errors.InvalidCatalogName, psycopg.errors.ObjectInUse):
                    continue  # claimed by a create that finished meanwhile, or someone is connected to it
            conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(sql.Identifier(db_name)))
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
        from psycopg import sql

        try:
            # Another process (the agent beside an in-process API) may be filling: one is enough.
            with self.pg.connect() as conn, advisory_lock(conn, PREFIX + key, try_only=True) as held:
                if not held:
                    return
                while len(_names(conn, key)) < KEEP:
                    spare = f"{PREFIX}{key}_{secrets.token_hex(4)}"
                    with advisory_lock(conn, spare):  # no claim until it is ready (see claim)
                        conn.execute(clone_sql(spare, template, closed=True, strategy=self.pg.clone_strategy(conn)))
                        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(spare)))
        except Exception as exc:  # the template was dropped meanwhile, the server stopped, ...: no spare then
            log.info("no spare databases for %s: %s", key, exc)
        finally:
            with self._lock:
                self._filling.discard(key)

    @staticmethod
    def drop(conn, template: str | None) -> None:
        """Drop the spares of a template that is going away."""
        from psycopg import sql

        for name in _names(conn, key_of(template)):
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
