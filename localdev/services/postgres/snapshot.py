"""PostgreSQL snapshots: a template database per snapshot, `localdev_snap_<id>`.

Like the seed templates and spares, nobody may connect to it (ALLOW_CONNECTIONS false, no PUBLIC grant), so
cloning it never finds it busy: a create from a snapshot, or a reset to one, is a `CREATE DATABASE … TEMPLATE`
(WAL_LOG) and a `REASSIGN OWNED` to the namespace's role; its objects belong meanwhile to a NOLOGIN role
`localdev_snapshot`, so that the namespace it was taken of can still be dropped.

How a snapshot is taken depends on whether the source can have sessions:
- a live namespace (`ns snapshot`, `ns create --from`): `pg_dump | pg_restore` into the template. CREATE
  DATABASE … TEMPLATE refuses a source anyone is connected to, and making the source idle would mean
  disconnecting the namespace's users; pg_dump reads one MVCC snapshot beside them (a consistent copy, no
  lock beyond ACCESS SHARE), so their sessions and transactions go on. It copies schema and data without
  owners or grants (`--no-owner --no-acl`): in the copy the namespace's role owns everything, as in a
  namespace.
- a namespace nobody can be connected to yet (the first seeded create, before it answers): a clone.
"""

from __future__ import annotations

import os
import subprocess
import tempfile

from localdev.errors import LocalDevError
from localdev.services.postgres.install import find_bin_dir
from localdev.services.postgres.locks import advisory_lock
from localdev.services.postgres.spares import clone_sql

ROLE = "localdev_snapshot"


def db_of(sid: str) -> str:
    return f"localdev_snap_{sid}"


class TemplateCopier:
    copies_seeds = False  # seeded creates keep the seed template and its spare clones

    def __init__(self, pg):
        self.pg = pg

    def _ident(self, name: str):
        from psycopg import sql

        return sql.Identifier(name)

    def _ensure_role(self, conn) -> None:
        from psycopg import sql

        with advisory_lock(conn, ROLE):
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone():
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(self._ident(ROLE)))
            self.pg.join_role(conn, ROLE)  # REASSIGN OWNED to and from it, pg_restore --role, without superuser

    def take(self, ns, sid: str, idle: bool) -> dict:
        import psycopg
        from psycopg import sql

        name = db_of(sid)
        with self.pg.connect() as conn:
            self._ensure_role(conn)
            cloned = False
            if idle:
                try:
                    conn.execute(clone_sql(name, ns.db_name, strategy=self.pg.clone_strategy(conn)))
                    cloned = True
                except psycopg.errors.ObjectInUse:
                    pass  # someone is connected after all: copy beside them
            if cloned:
                with self.pg.connect(name) as snap:
                    snap.execute(sql.SQL("REASSIGN OWNED BY {} TO {}").format(self._ident(ns.db_name),
                                                                              self._ident(ROLE)))
                # REASSIGN OWNED also hands over the shared objects the role owns: its own database. Back.
                conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(self._ident(ns.db_name),
                                                                            self._ident(ns.db_name)))
            else:
                conn.execute(clone_sql(name, None))
                conn.execute(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(self._ident(name), self._ident(ROLE)))
                with self.pg.connect(name) as snap:
                    snap.execute(sql.SQL("GRANT ALL ON SCHEMA public TO {}").format(self._ident(ROLE)))
                self._dump_restore(ns.db_name, name)
            conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(self._ident(name)))
            conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false")
                         .format(self._ident(name)))
        return {"db": name, "owner": ROLE, "method": "clone" if cloned else "pg_dump"}

    def _dump_restore(self, source: str, target: str) -> None:
        """pg_dump of `source` streamed into pg_restore of `target`, restored as ROLE in one transaction."""
        bin_dir = find_bin_dir(self.pg.option("bin_dir"))
        env = {**os.environ, **self.pg.admin_libpq_env()}  # the password never on a command line
        common = ["-h", self.pg.host, "-p", str(self.pg.port), "-U", env["PGUSER"], "--no-owner", "--no-acl"]
        with tempfile.TemporaryFile() as dump_err, tempfile.TemporaryFile() as restore_err:
            dump = subprocess.Popen([str(bin_dir / "pg_dump"), *common, "-d", source, "-Fc", "-Z0"],
                                    stdout=subprocess.PIPE, stderr=dump_err, env=env)
            restore = subprocess.Popen([str(bin_dir / "pg_restore"), *common, "-d", target, "--role", ROLE,
                                        "--single-transaction", "--exit-on-error"],
                                       stdin=dump.stdout, stderr=restore_err, env=env)
            assert dump.stdout is not None
            dump.stdout.close()  # pg_restore holds the pipe now: a failed restore ends the dump too
            restore.wait()
            dump.wait()
            for proc, err, what in ((dump, dump_err, "pg_dump"), (restore, restore_err, "pg_restore")):
                if proc.returncode != 0:
                    err.seek(0)
                    raise LocalDevError(f"postgres: {what} of {source} failed: "
                                        f"{err.read().decode(errors='replace').strip()[-500:]}")

    def _adopt(self, ns, part: dict) -> None:
        """The clone's objects become the namespace role's; the snapshot role keeps nothing in it."""
        from psycopg import sql

        with self.pg.connect(ns.db_name) as conn:
            conn.execute(sql.SQL("REASSIGN OWNED BY {} TO {}").format(self._ident(part["owner"]),
                                                                      self._ident(ns.db_name)))
            conn.execute(sql.SQL("REVOKE ALL ON SCHEMA public FROM {}").format(self._ident(part["owner"])))

    def create(self, ns, sid: str, part: dict) -> dict[str, str]:
        env = self.pg.create_namespace(ns, template=part["db"], spares=False)
        self._adopt(ns, part)
        return env

    def reset(self, ns, sid: str | None, part: dict | None) -> None:
        """The database is dropped (its sessions are ended: a reset takes the data they were using) and cloned
        again; the role, its password and so every setting in `ns env` stay. Back to a seeded state, a spare
        clone of the seed template is renamed instead while that template is there (the same content: the
        seed snapshot was cloned from a namespace made of it, before anyone could connect)."""
        self._drop_db(ns.db_name)
        if part is None:
            self.pg.create_namespace(ns)
        elif part.get("template") and self._exists(part["template"]):
            self.pg.create_namespace(ns, template=part["template"])
            self._adopt(ns, {"owner": part["template_owner"]})
        else:
            self.create(ns, sid or "", part)

    def _exists(self, db: str) -> bool:
        with self.pg.pool().connection() as conn:
            return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone() is not None

    def _drop_db(self, name: str) -> None:
        from psycopg import sql

        with self.pg.pool().connection() as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false ALLOW_CONNECTIONS false")
                             .format(self._ident(name)))
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(self._ident(name)))

    def drop(self, sid: str, part: dict | None) -> None:
        self._drop_db(db_of(sid))
