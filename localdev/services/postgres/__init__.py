"""PostgreSQL: the cluster's relational database, and the home of the namespace registry.

A namespace is a database ``ns_<name>`` owned by a role ``ns_<name>`` with a random password; CONNECT is
revoked from PUBLIC on it and on ``postgres``/``template1``, so one namespace's role can reach nothing else.

Example::

    from localdev.cluster import Cluster
    cluster = Cluster()
    cluster.up(services=["postgres"])
    cluster.namespaces.create("demo")
    env = cluster.namespaces.env("demo")
    # psycopg.connect(env["DATABASE_URL"]) lands in database ns_demo as role ns_demo
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from secrets import token_hex
from urllib.parse import quote

from localdev.errors import LocalDevError
from localdev.names import new_secret
from localdev.runtimes.base import ContainerSpec, ProcessSpec
from localdev.services.base import CA_FILE, Check, Option, PytestClient, Resources, Secret, Service, is_loopback
from localdev.services.postgres import initdb, install
from localdev.services.postgres.install import PostgresNotFound, find_bin_dir
from localdev.services.postgres.locks import advisory_lock
from localdev.services.postgres.seeds import SqlSeeds, apply_sql, commit, load
from localdev.services.postgres.spares import Spares, clone_sql
from localdev.state import write_private
from localdev.undo import Undo

IMAGE = "postgres:15.10-bookworm"
ADMIN = "postgres"
# Settings for a long-lived dev cluster that creates and drops many databases.
SERVER_SETTINGS = {
    # Bounded WAL: with the defaults it grows by hundreds of MB over a few hundred CREATE DATABASE.
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
# Superuser connections localdev opens outside its pools: readiness checks, the registry's first set-up, a
# template build, spare refills, a seeded create's REASSIGN OWNED. Not a hard bound: a burst of more
# concurrent seeded creates than this takes ordinary slots, and waits like a user's connection would.
ONE_OFF_CONNECTIONS = 10
ADMIN_POOL = 8
# Every admin connection of this process carries it, so when this process dies mid-create the agent that
# rolls the namespace back can end this process's statements still running in the server (see namespaces.py).
PROCESS_ID = token_hex(6)
APPLICATION_NAME = f"localdev {PROCESS_ID}"


class Postgres(Service):
    name = "postgres"
    default_port = 5432
    url_schemes = ("postgresql", "postgres")
    env_keys = ("DATABASE_URL", "PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSSLMODE", "PGSSLROOTCERT")
    secrets = (Secret("postgres", "password", lambda: new_secret(24)),)
    options = {
        "bin_dir": Option("", str, help="directory holding postgres and initdb"),
        "image": Option(IMAGE, str),
        "max_connections": Option(300, int),
        "user": Option("postgres", str, help="the unprivileged user the server runs as when localdev runs as root"),
    }

    def __init__(self, ctx):
        super().__init__(ctx)
        self._pool = None
        self._pool_lock = threading.Lock()
        self._clone_strategy: str | None = None
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
        if self.ctx.endpoint is None:  # a server someone else runs has its own settings: check_endpoint reads them
            self._check_connection_budget()

    def check_endpoint(self) -> None:
        """The server answers, at version 15 or later (CREATE DATABASE ... STRATEGY), localdev's role may make
        roles and databases (CREATEROLE, CREATEDB; superuser is not needed), and the server's connections leave
        one namespace's budget after localdev's own, which a role that is not superuser cannot reserve."""
        from localdev.services.postgres.external import check_admin

        check_admin(self)

    def own_connections(self) -> int:
        """The server slots kept for localdev's own superuser connections: the agent's registry pool, each
        service's admin pools, and the one-off connections. They become superuser_reserved_connections, so
        namespaces together can take at most max_connections minus this, and a namespace that exhausts
        the server still leaves the registry and the agent their connections (both connect as the admin).
        An in-process API user (Cluster().namespaces beside the agent) opens pools of its own on top."""
        from localdev.namespaces import REGISTRY_POOL

        services = [svc for svc in (self.ctx.services or {self.name: self}).values() if svc.option("enabled")]
        if self not in services:
            services.append(self)
        return REGISTRY_POOL + ONE_OFF_CONNECTIONS + sum(svc.postgres_admin_connections() for svc in services)

    def postgres_admin_connections(self) -> int:
        return ADMIN_POOL

    def _check_connection_budget(self) -> None:
        from localdev.errors import BadInput

        server, own = int(self.option("max_connections")), self.own_connections()
        budget = int(self.ctx.namespaces.get("max_connections", 20))
        if server - own < budget:
            raise BadInput(f"[services.postgres] max_connections = {server} leaves {max(server - own, 0)} connections "
                           f"for namespaces after localdev's own {own} (the registry pool, admin pools and "
                           f"one-off connections), fewer than one namespace's budget ([namespaces] "
                           f"max_connections = {budget}): raise it to at least {own + budget} or lower the budget; "
                           "nothing was started")

    def install(self) -> None:
        find_bin_dir(self.option("bin_dir"))  # system packages: found, or a message saying how to get them

    def provision(self) -> None:
        self._initdb()
        if self.tls:
            self._install_tls()

    def serves_tls(self) -> bool:
        return self.ctx.runtime == "native" and self.ctx.server_cert is not None

    @property
    def tls_dir(self) -> Path:
        return self.server_root / "tls"

    def _install_tls(self) -> None:
        """The cluster's server certificate and key where the server's user can read them (its own 0600
        copy of the key: PostgreSQL refuses a key others can read), and an hba file that lets namespaces in
        from beyond loopback over TLS only."""
        assert self.ctx.server_cert is not None  # serves_tls() said so
        cert = self.ctx.server_cert()
        self.tls_dir.mkdir(parents=True, exist_ok=True)
        self._chown(self.tls_dir)
        for source, name in ((cert.cert, "server.pem"), (cert.key, "server.key")):
            write_private(self.tls_dir / name, source.read_text())
            self._chown(self.tls_dir / name)
        # From this machine (loopback, or its own bind address: localdev and FerretDB connect there) with or
        # without TLS; from anywhere else only with it.
        bind = self.ctx.host
        here = [] if bind in ("0.0.0.0", "::") else [f"host all all {bind}/{128 if ':' in bind else 32} scram-sha-256"]
        write_private(self.tls_dir / "pg_hba.conf", "\n".join([
            "local all all trust", "host all all 127.0.0.1/32 scram-sha-256", "host all all ::1/128 scram-sha-256",
            *here, "hostssl all all 0.0.0.0/0 scram-sha-256", "hostssl all all ::/0 scram-sha-256"]) + "\n")
        self._chown(self.tls_dir / "pg_hba.conf")

    def _initdb(self) -> None:
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
            as_user: dict = {}
            if self.run_as:
                pw = pwd.getpwnam(self.run_as)
                as_user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
            initdb.make(bin_dir, self.pgdata, ADMIN, self.admin_password, as_user=as_user, pwfile=pwfile,
                        shared=root.parent.parent if self.run_as else None)
        finally:
            pwfile.unlink(missing_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        self._chown(self.socket_dir)

    def _settings(self) -> dict[str, str]:
        return {**SERVER_SETTINGS, "max_connections": str(self.option("max_connections")),
                "superuser_reserved_connections": str(self.own_connections())}

    def native_spec(self) -> ProcessSpec:
        bin_dir = find_bin_dir(self.option("bin_dir"))
        argv = [str(bin_dir / "postgres"), "-D", str(self.pgdata), "-p", str(self.port),
                "-c", f"listen_addresses={self.ctx.host}", "-c", f"unix_socket_directories={self.socket_dir}"]
        for key, value in self._settings().items():
            argv += ["-c", f"{key}={value}"]
        if self.tls:
            argv += ["-c", "ssl=on", "-c", f"ssl_cert_file={self.tls_dir / 'server.pem'}",
                     "-c", f"ssl_key_file={self.tls_dir / 'server.key'}",
                     "-c", f"hba_file={self.tls_dir / 'pg_hba.conf'}"]
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

    def container_resources(self) -> Resources:
        # initdb refuses a data directory holding a fresh filesystem's lost+found
        return Resources(memory="256Mi", memory_limit="1Gi", cpu="250m", cpu_limit="2", storage="10Gi",
                         subdir="pgdata")

    def external_admin(self, host: str, port: int) -> tuple[str, str | None]:
        return f"postgresql://{ADMIN}@{host}:{port}/postgres", "postgres_admin_password"

    @property
    def admin_db(self) -> str:
        """The database localdev's admin connections open by default (an external url's path names it)."""
        endpoint = self.ctx.endpoint
        return endpoint.path.lstrip("/") if endpoint and endpoint.path else "postgres"

    def admin_url(self, dbname: str | None = None) -> str:
        dbname = dbname or self.admin_db
        if self.ctx.endpoint:
            return self.ctx.endpoint.url(path="/" + quote(dbname, safe=""))
        return f"postgresql://{ADMIN}:{quote(self.admin_password, safe='')}@{self.host}:{self.port}/{dbname}"

    def admin_libpq_env(self) -> dict[str, str]:
        """libpq's environment for localdev's admin login (for pg_dump and pg_restore): user, password and, for
        an external url, its TLS settings."""
        endpoint = self.ctx.endpoint
        if endpoint is None:
            return {"PGUSER": ADMIN, "PGPASSWORD": self.admin_password}
        params = dict(endpoint.query)
        env = {"PGUSER": endpoint.user, "PGPASSWORD": endpoint.password or ""}
        env.update({k: params[p] for k, p in (("PGSSLMODE", "sslmode"), ("PGSSLROOTCERT", "sslrootcert"))
                    if p in params})
        return env

    def connect(self, dbname: str | None = None, **kwargs):
        """A new autocommit admin connection (the caller closes it)."""
        import psycopg

        return psycopg.connect(self.admin_url(dbname), autocommit=True, connect_timeout=5,
                               application_name=APPLICATION_NAME, **kwargs)

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

    def namespace_sizes(self, namespaces) -> dict[str, int]:
        by_db = {ns.db_name: ns.name for ns in namespaces}
        if not by_db:
            return {}
        with self.pool().connection() as conn:
            rows = conn.execute("SELECT datname, pg_database_size(oid) FROM pg_database WHERE datname = ANY(%s)",
                                (list(by_db),)).fetchall()
        return {by_db[db]: size for db, size in rows}

    def make_pool(self, dbname: str, max_size: int, name: str):
        """Warm autocommit admin connections; each checked on checkout, so a server restart costs no failure."""
        from psycopg_pool import ConnectionPool

        return ConnectionPool(self.admin_url(dbname), min_size=1, max_size=max_size, open=True, timeout=30,
                              kwargs={"autocommit": True, "application_name": APPLICATION_NAME}, name=name,
                              check=check_idle_connection)

    def pool(self):
        """Admin connections to the `postgres` database (the agent's hot path)."""
        # Locked: the services' creates ask at once (redis's through this one), and of two pools made side by
        # side one was dropped unclosed, its worker thread and connection kept until the garbage collector ran.
        with self._pool_lock:
            if self._pool is None:
                self._pool = self.make_pool(self.admin_db, ADMIN_POOL, "postgres-admin")
            return self._pool

    def close(self) -> None:
        with self._pool_lock:
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

    def missing_debian_packages(self) -> list[str]:
        return install.missing_debian_packages()

    @classmethod
    def pytest_clients(cls) -> list[PytestClient]:
        return [PytestClient("pg", _pg_connection, scope="function",
                             doc="A psycopg connection to the namespace's database (as its own role), closed "
                                 "after the test.")]

    # -- namespaces -----------------------------------------------------
    @staticmethod
    def password(ns) -> str:
        return ns.secret("postgres", "password")

    def namespace_env(self, ns) -> dict[str, str]:
        return self._env(ns, self.client_host)

    def _env(self, ns, host: str) -> dict[str, str]:
        user = db = ns.db_name
        password = self.password(ns)
        env = {
            "DATABASE_URL": f"postgresql://{user}:{quote(password, safe='')}@{host}:{self.port}/{db}",
            "PGHOST": host, "PGPORT": str(self.port), "PGUSER": user,
            "PGPASSWORD": password, "PGDATABASE": db,
        }
        if self.ctx.endpoint and self.ctx.endpoint.query:  # its TLS settings hold for the namespace too
            from urllib.parse import urlencode

            params = dict(self.ctx.endpoint.query)
            env["DATABASE_URL"] += "?" + urlencode(self.ctx.endpoint.query)
            env.update({k: params[p] for k, p in (("PGSSLMODE", "sslmode"), ("PGSSLROOTCERT", "sslrootcert"))
                        if p in params})
        if self.tls and not is_loopback(host):  # the server's name checked against the cluster CA
            env["DATABASE_URL"] += f"?sslmode=verify-full&sslrootcert={CA_FILE}"
            env.update({"PGSSLMODE": "verify-full", "PGSSLROOTCERT": CA_FILE})
        return env

    def create_namespace(self, ns, template: str | None = None, spares: bool = True) -> dict[str, str]:
        """`template`: the database it is a clone of (default template1); `spares`: claim a spare clone made
        ahead and refill them (a snapshot's template has none: it is cloned once per create from it)."""
        return self._make_namespace(ns, template, spares)[0]

    def _make_namespace(self, ns, template: str | None, spares: bool) -> tuple[dict[str, str], bool]:
        """create_namespace, and whether the database's objects are the role's already (a claimed spare: its
        role became the namespace's) rather than the template's owner's."""
        from psycopg import sql

        role = sql.Identifier(ns.db_name)
        with self.pool().connection() as conn:
            role_exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ns.db_name,)).fetchone()
            db_exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (ns.db_name,)).fetchone()
            claimed = not role_exists and not db_exists and spares and self.spares.claim(conn, template, ns.db_name)
            # A re-create (seed, an interrupted create) sets the budget again; a namespace from before the
            # budget (None) keeps the role's unlimited -1. An existing role is one of ours, made without
            # SUPERUSER, CREATEDB or CREATEROLE (naming them in ALTER ROLE needs a superuser).
            limit = sql.SQL("") if ns.max_connections is None else \
                sql.SQL(" CONNECTION LIMIT {}").format(sql.Literal(int(ns.max_connections)))
            verb = "ALTER ROLE {} LOGIN" if role_exists or claimed else \
                "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"
            conn.execute(sql.SQL(verb + " PASSWORD {}{}").format(role, sql.Literal(self.password(ns)), limit))
            # An admin that is not superuser (a managed server) may give a database to a role, rename it, end
            # its sessions and drop it only as a member of that role: CREATEROLE lets it grant that to itself.
            self.join_role(conn, ns.db_name)
            if not db_exists and not claimed:
                conn.execute(clone_sql(ns.db_name, template, owner=ns.db_name, strategy=self.clone_strategy(conn)))
            if spares and not db_exists:
                self.spares.refill(template)
            conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(role))
        return self.namespace_env(ns), bool(claimed)

    def clone_strategy(self, conn) -> str:
        """How CREATE DATABASE copies a template here. FILE_COPY copies its files but forces two checkpoints,
        which cost a server with fsync on (a managed one) far more than the copy; WAL_LOG writes every page of
        the template to the WAL instead. With fsync off (ours) a checkpoint only writes to the page cache, and
        FILE_COPY takes less CPU per clone (bench/pg_clone.py), which spare refills and snapshot takes share
        with the creates they run beside."""
        if self._clone_strategy is None:
            fsync = conn.execute("SHOW fsync").fetchone()[0]
            self._clone_strategy = "FILE_COPY" if fsync == "off" else "WAL_LOG"
        return self._clone_strategy

    @staticmethod
    def join_role(conn, role: str) -> None:
        from psycopg import sql

        if not conn.execute("SELECT pg_has_role(current_user, %s, 'MEMBER')", (role,)).fetchone()[0]:
            conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(role)))

    def end_statements_of(self, process_id: str, timeout: float = 30.0) -> int:
        """End what a dead localdev process (its PROCESS_ID) still runs in the server, and wait until it is gone:
        a statement in flight when the process died (CREATE DATABASE, a rename) would otherwise finish after
        another agent rolled its namespace back, and leave what it made behind. Returns how many it ended."""
        name = f"localdev {process_id}"
        if process_id == PROCESS_ID:
            return 0  # this process is alive: its own connections are not stragglers
        with self.connect() as conn:
            ended = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                 "WHERE application_name = %s AND pid <> pg_backend_pid()", (name,)).fetchone()[0]
            deadline = time.monotonic() + timeout
            while conn.execute("SELECT 1 FROM pg_stat_activity WHERE application_name = %s", (name,)).fetchone():
                if time.monotonic() > deadline:
                    raise LocalDevError(f"the sessions of a dead localdev process ({name!r}) did not end within "
                                        f"{timeout:.0f}s: try again, or end them in the server")
                time.sleep(0.05)
        return ended

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

    def snapshot_copier(self):
        from localdev.services.postgres.snapshot import TemplateCopier

        return TemplateCopier(self)

    # -- seeds ---------------------------------------------------------------
    @classmethod
    def load_fixtures(cls, folder: Path) -> SqlSeeds:
        return load(folder)

    def seed(self, ns, seeds: SqlSeeds) -> Undo:
        """Replay: all files in one transaction, as the namespace's own role (so it owns what they create).
        The transaction stays open until the Undo is committed, so another service's failure rolls it back."""
        import psycopg

        conn = psycopg.connect(self._env(ns, self.host)["DATABASE_URL"], connect_timeout=10)  # from this machine
        try:
            apply_sql(conn, seeds, ns.name)
        except BaseException:
            conn.close()  # never committed: nothing of it stays
            raise
        return Undo(commit=lambda: commit(conn, seeds)).add(conn.close)

    def create_seeded(self, ns, seeds: SqlSeeds) -> dict[str, str]:
        """The fast path: clone a template database seeded once per fixtures content, then hand it to the role."""
        from psycopg import sql

        if not seeds.files:
            return self.create_namespace(ns)
        template = self._template(seeds, ns.name)
        env, claimed = self._make_namespace(ns, template, spares=True)
        if claimed:  # the spare's objects were reassigned to its role, which is the namespace's now
            return env
        with self.pool().connection() as conn:  # REASSIGN OWNED needs it, for a template another role built
            self.join_role(conn, seeds.owner)
        with self.connect(ns.db_name) as conn:  # objects in the clone belong to the template's seed role
            conn.execute(sql.SQL("REASSIGN OWNED BY {} TO {}").format(
                sql.Identifier(seeds.owner), sql.Identifier(ns.db_name)))
            conn.execute(sql.SQL("REVOKE ALL ON SCHEMA public FROM {}").format(sql.Identifier(seeds.owner)))
        return env

    def _template(self, seeds: SqlSeeds, namespace: str) -> str:
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
        with self.connect() as conn, advisory_lock(conn, name):
            row = conn.execute("SELECT datistemplate FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if row and row[0]:
                return name
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (owner,)).fetchone():
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(owner)))
            self.join_role(conn, owner)  # SET ROLE to it below, REASSIGN OWNED from it in every clone
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name)))
            conn.execute(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(sql.Identifier(name),
                                                                             sql.Identifier(owner)))
            try:
                with psycopg.connect(self.admin_url(name), connect_timeout=10) as tpl:
                    with tpl.transaction():
                        tpl.execute(sql.SQL("GRANT ALL ON SCHEMA public TO {}").format(sql.Identifier(owner)))
                        tpl.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(owner)))
                        apply_sql(tpl, seeds, namespace)
            except (BadInput, psycopg.Error):
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
                raise
            conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false")
                         .format(sql.Identifier(name)))
            self._drop_old_templates(conn, keep=name)
            return name

    @staticmethod
    def _drop_old_templates(conn, keep: str, newest: int = 3) -> None:
        """Keep the few newest seed templates (fixtures change while people work); drop the rest."""
        from psycopg import sql

        # (only those this role may drop: another admin role's templates are that role's to prune)
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'localdev_tpl_%%' AND datname <> %s "
                            "AND pg_has_role(current_user, datdba, 'MEMBER') "
                            "ORDER BY oid DESC OFFSET %s", (keep, newest - 1)).fetchall()
        for (name,) in rows:
            Spares.drop(conn, name)
            conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _pg_connection(env: dict):
    import psycopg

    conn = psycopg.connect(env["DATABASE_URL"])
    yield conn
    conn.close()


def check_idle_connection(conn) -> None:
    """A pool's checkout check that costs a round trip only when one can fail. An idle connection's server
    says nothing until asked, and a server that stops, restarts or ends the session closes its side (after a
    "terminating connection" notice, usually), or the kernel closes it when the server is killed: while
    nothing is readable on the socket, the connection is as alive as a query would show. Anything readable
    gets psycopg_pool's own check, which raises for a dead connection, and the pool makes a new one. That
    check alone sent an empty query at every checkout: half a dozen per `ns create`, each a wait for a busy
    server on the request's path."""
    import select

    from psycopg_pool import ConnectionPool

    if not conn.closed:
        poller = select.poll()  # not select(): the agent may hold more than FD_SETSIZE descriptors
        poller.register(conn.fileno(), select.POLLIN)
        if not poller.poll(0):
            return
    ConnectionPool.check_connection(conn)
