"""MongoDB-compatible server: FerretDB v1 on the cluster's PostgreSQL, mongo-java-server behind localdev's
authenticating launcher, or real MongoDB in containers.

A namespace is the MongoDB database ``ns_<name>``. With FerretDB's PostgreSQL backend that database is
a schema of the one PostgreSQL database ``ferretdb``, owned by the namespace's own PostgreSQL role (the
postgres service makes the role); FerretDB passes each client's PLAIN credentials through to
PostgreSQL, so PostgreSQL refuses every read and write of another namespace's data. With the
`mongodb` and `mongo-java-server` flavors a namespace is a database plus a SCRAM user with `readWrite` on
it alone (mongo-java-server has no users of its own: MongoJavaServer.java, our launcher, adds SCRAM and
checks every command against the user's database).

Example::

    from localdev.cluster import Cluster
    cluster = Cluster()
    cluster.up(services=["mongo"])
    cluster.namespaces.create("demo")
    env = cluster.namespaces.env("demo")
    # pymongo.MongoClient(env["MONGODB_URI"]).get_default_database() is database ns_demo
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

from localdev.errors import BadInput, LocalDevError
from localdev.names import new_secret
from localdev.runtimes.base import ContainerSpec, ProcessSpec
from localdev.services.base import CA_FILE, Check, Option, PytestClient, Resources, Secret, Service
from localdev.services.mongo import install, install_mjs
from localdev.services.postgres.locks import advisory_lock
from localdev.undo import Undo, undoing

FERRETDB_IMAGE = "ghcr.io/ferretdb/ferretdb:1.24.2"
MONGO_IMAGE = "mongo:7.0.16"
# No published image carries our launcher: users build this one from localdev/services/mongo/Dockerfile
MJS_IMAGE = "localhost/localdev-mongo-java-server:1.47.0"
MJS_UID = 999  # the user of that image (useradd in localdev/services/mongo/Dockerfile)
FLAVORS = ("ferretdb", "mongo-java-server", "mongodb")
META_DB = "ferretdb"  # the PostgreSQL database FerretDB serves: one schema per namespace
ADMIN_ROLE = "localdev_ferretdb"  # owns META_DB and reads all data: FerretDB's first request after each start
META_POOL = 4  # localdev's superuser connections to FerretDB's metadata database
ANON_ROLE = "localdev_ferretdb_anon"  # NOLOGIN, the user in --postgresql-url: unauthenticated clients get nothing
METADATA_TABLE = "_ferretdb_database_metadata"
INIT_COLLECTION = "_localdev_init"
MONGO_ROOT = "localdev"


class MongoError(LocalDevError):
    pass


class Mongo(Service):
    name = "mongo"
    default_port = 27017
    url_schemes = ("mongodb",)
    depends_on = ("postgres",)  # FerretDB's backend (see `needs`: the other flavors do without)
    ready_timeout = 90.0  # a mongo container's first start initialises its data
    env_keys = ("MONGODB_URI",)
    # The SCRAM user of the mongodb and mongo-java-server flavors. FerretDB passes PLAIN credentials through
    # to PostgreSQL, so there the namespace logs in with its PostgreSQL role's password instead.
    secrets = (Secret("mongo", "password", lambda: new_secret(24)),)
    options = {
        # mongo-java-server by measurement: no wrong answer on tests/test_mongo_conformance.py, SCRAM users
        # enforced per database; FerretDB v1 answers some aggregations wrongly without an error (docs/mongo.md)
        "flavor": Option("mongo-java-server", str, FLAVORS,
                         help="ferretdb or mongo-java-server (native or container), or mongodb (containers only)"),
        "backend": Option("postgresql", str, ("postgresql", "sqlite"),
                          help="FerretDB's storage: the cluster's PostgreSQL (enforced isolation) or SQLite (none)"),
        "bin": Option("", str, help="path of a FerretDB v1 binary "
                                    "(else LOCALDEV_FERRETDB_BIN, the cache, a download or a build)"),
        "image": Option("", str, help="container image (default: pinned FerretDB v1 or MongoDB per flavor)"),
        "pool_max_conns": Option(4, int, help="PostgreSQL connections FerretDB may hold per namespace"),
        "heap": Option("256m", str, help="mongo-java-server's Java heap limit (-Xmx)"),
        "cds": Option(True, bool, help="mongo-java-server: record and use an AppCDS class archive (faster start)"),
    }

    def __init__(self, ctx):
        super().__init__(ctx)
        self._admin = None
        self._meta_pool = None
        self._meta_ready = False
        self._lock = threading.Lock()

    # -- configuration ---------------------------------------------------------
    @property
    def flavor(self) -> str:
        return self.option("flavor")

    @property
    def on_postgres(self) -> bool:
        return self.flavor == "ferretdb" and self.option("backend") == "postgresql"

    @property
    def needs(self) -> tuple[str, ...]:
        """Only FerretDB on PostgreSQL runs on PostgreSQL and keeps a namespace in the namespace's role and
        schema; the other flavors start, and make their users and databases, beside PostgreSQL."""
        return ("postgres",) if self.on_postgres else ()

    @property
    def scram(self) -> bool:
        """Namespaces are SCRAM users with readWrite on their database (the server enforces it)."""
        return self.flavor in ("mongodb", "mongo-java-server")

    @property
    def pg(self):
        return self.ctx.services["postgres"]

    def check(self) -> None:
        if self.flavor == "ferretdb" and self.ctx.endpoint is not None:
            raise BadInput('[services.mongo] flavor = "ferretdb" is not for runtime = "external": its namespaces are '
                           'PostgreSQL schemas FerretDB must be started for; point url at a MongoDB (flavor = '
                           '"mongodb") or a mongo-java-server behind localdev\'s launcher')
        if self.flavor == "mongodb" and self.ctx.runtime == "native":
            raise BadInput('[services.mongo] flavor = "mongodb" runs only in containers (there is no MongoDB '
                           'server download for the native runtime): use runtime = "docker", or flavor = '
                           '"mongo-java-server" or "ferretdb"')
        if self.flavor == "mongo-java-server" and not re.fullmatch(r"[1-9][0-9]*[mMgG]", str(self.option("heap"))):
            raise BadInput(f'[services.mongo] heap = "{self.option("heap")}": give a Java heap size such as "256m" '
                           'or "1g"')

    def _secret(self, key: str) -> str:
        return self.ctx.state.secret(key)

    # -- running -----------------------------------------------------------------
    def install(self) -> None:
        if self.flavor == "ferretdb":
            install.ferretdb_binary(self.option("bin") or None)
        elif self.flavor == "mongo-java-server":
            install_mjs.provision(cds=bool(self.option("cds")))

    def provision(self) -> None:
        self.install()
        (self.data_dir / "state").mkdir(parents=True, exist_ok=True)
        if self.flavor == "ferretdb" and not self.on_postgres:
            (self.data_dir / "sqlite").mkdir(parents=True, exist_ok=True)

    def _postgres_url(self, host: str, port: int) -> str:
        # Never put credentials that can read tenants' data here: unauthenticated clients get this user.
        params = f"pool_max_conns={int(self.option('pool_max_conns'))}&sslmode=disable"
        # FerretDB forces idle connections out after 1 min only when the key is present (pgx's default: 30 min)
        params += "&pool_max_conn_idle_time=1m"
        return f"postgres://{ANON_ROLE}@{host}:{port}/{META_DB}?{params}"

    def native_spec(self) -> ProcessSpec:
        if self.flavor == "mongo-java-server":
            return self._mjs_native_spec()
        argv = [str(install.ferretdb_binary(self.option("bin") or None)), *self._ferretdb_listen_args(),
                # the debug server (metrics, pprof) defaults to 8088: ask the OS for a free port, on loopback
                "--debug-addr=127.0.0.1:0",
                "--telemetry=disable", f"--state-dir={self.data_dir / 'state'}", "--log-level=info"]
        if self.on_postgres:
            argv += ["--handler=postgresql", f"--postgresql-url={self._postgres_url(self.pg.host, self.pg.port)}"]
        else:
            argv += ["--handler=sqlite", f"--sqlite-url=file:{self.data_dir / 'sqlite'}/"]
        # libpq-style variables in the caller's environment would fill gaps in the URL: leave none to fill
        env = {"PGPASSWORD": "", "PGPASSFILE": os.devnull, "PGSERVICEFILE": os.devnull}
        return ProcessSpec(argv=argv, env=env, cwd=self.data_dir, ports=[self.port], stop_timeout=10)

    def _ferretdb_listen_args(self) -> list[str]:
        if not self.tls:
            return [f"--listen-addr={self.ctx.host}:{self.port}"]
        # Beyond loopback only the TLS listener (an empty --listen-addr turns the plain one off). No
        # --listen-tls-ca-file: FerretDB would then demand client certificates; the password authenticates.
        assert self.ctx.server_cert is not None  # serves_tls() said so
        cert = self.ctx.server_cert()
        return ["--listen-addr=", f"--listen-tls={self.ctx.host}:{self.port}",
                f"--listen-tls-cert-file={cert.cert}", f"--listen-tls-key-file={cert.key}"]

    def _mjs_argv(self, java: str, classpath: str, host: str, port: int, data: str,
                  jvm_options: tuple[str, ...] = ()) -> list[str]:
        return [java, f"-Xmx{self.option('heap')}", *install_mjs.JVM_OPTIONS, *jvm_options,
                "-cp", classpath, install_mjs.LAUNCHER_MAIN, "--host", host, "--port", str(port),
                "--data", f"{data}/mongo.mv.db", "--users", f"{data}/users", "--cache-mb", str(self._cache_mb())]

    def _cache_mb(self) -> int:
        """H2's page cache: a quarter of the heap. Its default (16 MB) is smaller than one seed snapshot of
        50 000 documents, and a snapshot's copy then deserializes every page of its source again from the
        file (Java serialization: most of the copy's time, bench/snapshots.py)."""
        heap = str(self.option("heap"))
        mb = int(heap[:-1]) * (1024 if heap[-1] in "gG" else 1)
        return max(16, mb // 4)

    def _mjs_env(self) -> dict[str, str]:
        # the root password goes in the environment (readable by this user only), never on the command line
        return {"LOCALDEV_MONGO_ROOT_USER": MONGO_ROOT,
                "LOCALDEV_MONGO_ROOT_PASSWORD": self._secret("mongo_root_password")}

    def serves_tls(self) -> bool:
        # FerretDB on SQLite has no authentication: TLS would only hide that anyone can read everything.
        return ((self.flavor == "mongo-java-server" or self.on_postgres) and self.ctx.runtime == "native"
                and self.ctx.server_cert is not None)

    def _ca_file(self) -> str | None:
        """The cluster CA's certificate file, when this server speaks TLS (every connection then must)."""
        if not self.tls:
            return None
        assert self.ctx.server_cert is not None  # serves_tls() said so
        return str(self.ctx.server_cert().ca)

    def _mjs_native_spec(self) -> ProcessSpec:
        inst = install_mjs.provision(cds=bool(self.option("cds")))
        argv = self._mjs_argv(inst.java, inst.classpath, self.ctx.host, self.port, str(self.data_dir / "state"),
                              inst.jvm_options())
        if self.tls:  # beyond loopback: the cluster's certificate
            assert self.ctx.server_cert is not None
            cert = self.ctx.server_cert()
            argv += ["--tls-cert", str(cert.cert), "--tls-key", str(cert.key)]
        return ProcessSpec(argv=argv, env=self._mjs_env(), cwd=self.data_dir, ports=[self.port], stop_timeout=15)

    def container_spec(self) -> ContainerSpec:
        if self.flavor == "mongo-java-server":
            # the image's entrypoint is `java`; the jars and the compiled launcher are under /opt/mjs
            argv = self._mjs_argv("java", "/opt/mjs/classes:/opt/mjs/lib/*", "0.0.0.0", 27017, "/data")[1:]
            return ContainerSpec(image=self.option("image") or MJS_IMAGE, command=argv, env=self._mjs_env(),
                                 ports={27017: self.port}, volumes={"mongo-data": "/data"}, healthcheck=None)
        if self.flavor == "mongodb":
            return ContainerSpec(
                image=self.option("image") or MONGO_IMAGE,
                env={"MONGO_INITDB_ROOT_USERNAME": MONGO_ROOT,
                     "MONGO_INITDB_ROOT_PASSWORD": self._secret("mongo_root_password")},
                ports={27017: self.port}, volumes={"mongo-data": "/data/db"},
                healthcheck=["mongosh", "--quiet", "--eval", "db.adminCommand('ping').ok"])
        env = {"FERRETDB_LISTEN_ADDR": ":27017", "FERRETDB_DEBUG_ADDR": "127.0.0.1:8088",
               "FERRETDB_TELEMETRY": "disable", "FERRETDB_STATE_DIR": "/state"}
        if self.on_postgres:
            # containers reach each other by service name on the cluster's network
            env.update({"FERRETDB_HANDLER": "postgresql",
                        "FERRETDB_POSTGRESQL_URL": self._postgres_url("postgres", 5432)})
        else:
            env.update({"FERRETDB_HANDLER": "sqlite", "FERRETDB_SQLITE_URL": "file:/state/"})  # must exist: the volume
        # The image has no shell or client: readiness is checked from the host (a real ping).
        return ContainerSpec(image=self.option("image") or FERRETDB_IMAGE, env=env, ports={27017: self.port},
                             volumes={"mongo-data": "/state"}, healthcheck=None)

    def container_resources(self) -> Resources:
        if self.flavor == "mongo-java-server":  # a 256 MB heap (-Xmx256m) plus the JVM's own; the image's user
            return Resources(memory="192Mi", memory_limit="512Mi", cpu="100m", cpu_limit="1", storage="2Gi",
                             fs_group=MJS_UID)
        if self.flavor == "mongodb":
            return Resources(memory="512Mi", memory_limit="2Gi", cpu="250m", cpu_limit="2", storage="10Gi")
        return Resources(memory="64Mi", memory_limit="256Mi", cpu="50m", cpu_limit="1")

    def external_admin(self, host: str, port: int) -> tuple[str, str | None]:
        if self.on_postgres:  # FerretDB hands PLAIN credentials to PostgreSQL
            return f"mongodb://{ADMIN_ROLE}@{host}:{port}/?authMechanism=PLAIN", "ferretdb_admin_password"
        if self.flavor == "ferretdb":  # its SQLite backend has no users
            return f"mongodb://{host}:{port}/", None
        return f"mongodb://{MONGO_ROOT}@{host}:{port}/?authSource=admin", "mongo_root_password"

    # -- clients -------------------------------------------------------------------
    def _client(self, username: str | None = None, password: str | None = None, mechanism: str | None = None,
                source: str | None = None, timeout_ms: int = 3000):
        import pymongo

        kwargs: dict[str, Any] = {}
        if username:
            kwargs = {"username": username, "password": password, "authMechanism": mechanism}
            if source:
                kwargs["authSource"] = source
        ca = self._ca_file()
        if ca:
            kwargs.update({"tls": True, "tlsCAFile": ca})
        return pymongo.MongoClient(self.host, self.port, serverSelectionTimeoutMS=timeout_ms,
                                   connectTimeoutMS=timeout_ms, appname="localdev", **kwargs)

    def admin(self):
        """A warm client with the cluster's own credentials for this flavor (an external url's, there)."""
        with self._lock:
            if self._admin is None:
                if self.ctx.endpoint is not None:
                    import pymongo

                    self._admin = pymongo.MongoClient(self.ctx.endpoint.url(), serverSelectionTimeoutMS=3000,
                                                      connectTimeoutMS=3000, appname="localdev")
                elif self.on_postgres:
                    self._admin = self._client(ADMIN_ROLE, self._secret("ferretdb_admin_password"), "PLAIN")
                elif self.scram:
                    self._admin = self._client(MONGO_ROOT, self._secret("mongo_root_password"), "SCRAM-SHA-256",
                                               "admin")
                else:
                    self._admin = self._client()
            return self._admin

    def meta_pool(self):
        """Warm superuser connections to the `ferretdb` PostgreSQL database (ownership changes)."""
        with self._lock:
            if self._meta_pool is None:
                from psycopg_pool import ConnectionPool

                # checked on checkout: PostgreSQL may have been restarted under a long-lived agent
                self._meta_pool = ConnectionPool(self.pg.admin_url(META_DB), min_size=1, max_size=META_POOL, open=True,
                                                 kwargs={"autocommit": True}, name="ferretdb-meta",
                                                 check=ConnectionPool.check_connection)
            return self._meta_pool

    def postgres_admin_connections(self) -> int:
        # FerretDB's own pgx pools log in as the namespaces' roles: they count against each namespace's
        # budget, not here.
        return META_POOL if self.on_postgres else 0

    @classmethod
    def pytest_clients(cls) -> list[PytestClient]:
        return [PytestClient("mongo", _mongo_database, doc="The namespace's pymongo database.")]

    def close(self) -> None:
        with self._lock:
            if self._admin is not None:
                self._admin.close()
                self._admin = None
            if self._meta_pool is not None:
                self._meta_pool.close()
                self._meta_pool = None

    # -- readiness -------------------------------------------------------------------
    def ensure_meta(self) -> None:
        """PostgreSQL side of FerretDB, idempotent: the `ferretdb` database and localdev's two roles."""
        from psycopg import errors, sql

        with self.pg.connect() as conn, advisory_lock(conn, "ferretdb-meta"):
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ANON_ROLE,)).fetchone():
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(ANON_ROLE)))
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ADMIN_ROLE,)).fetchone()
            conn.execute(sql.SQL(("ALTER" if exists else "CREATE") + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB "
                                 "NOCREATEROLE PASSWORD {}").format(
                sql.Identifier(ADMIN_ROLE), sql.Literal(self._secret("ferretdb_admin_password"))))
            # FerretDB's first request after a start loads every namespace's metadata: it must see them all
            conn.execute(sql.SQL("GRANT pg_read_all_data TO {}").format(sql.Identifier(ADMIN_ROLE)))
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (META_DB,)).fetchone():
                try:  # FerretDB needs UTF8 and the C collation
                    conn.execute(sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING 'UTF8' "
                                         "LC_COLLATE 'C' LC_CTYPE 'C'").format(
                        sql.Identifier(META_DB), sql.Identifier(ADMIN_ROLE)))
                except errors.DuplicateDatabase:
                    pass
            conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(META_DB)))
        with self.pg.connect(META_DB) as conn:
            conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")

    def check_endpoint(self) -> None:
        from localdev.services.mongo.external import check_admin

        check_admin(self)

    def ready(self) -> bool:
        """A real `ping`. With FerretDB on PostgreSQL it is also the first request after a start, made as
        localdev's reader role, so FerretDB's metadata cache holds every namespace (a tenant first would
        load only its own, and the others would fail until the next restart)."""
        import psycopg
        from pymongo.errors import OperationFailure, PyMongoError

        try:
            try:
                return self.admin().admin.command("ping").get("ok") == 1
            except OperationFailure:
                # PostgreSQL refused localdev's role: a new cluster (or a purged one) has not made it yet.
                # A refused first request loads nothing, so asking again after making it is still first.
                if not self.on_postgres or self._meta_ready:
                    raise
                self.ensure_meta()
                self._meta_ready = True
                return self.admin().admin.command("ping").get("ok") == 1
        except (PyMongoError, psycopg.Error, OSError):
            return False

    def after_ready(self) -> None:
        if not self.on_postgres:
            return
        missing = self._schemas() - set(self.admin().list_database_names())
        if missing:
            raise MongoError(
                f"FerretDB loaded its metadata before localdev's first request, so it does not see the "
                f"namespaces {', '.join(sorted(missing))}: restart it (`localdev down && localdev up`)")

    def _schemas(self) -> set[str]:
        """Schemas that are FerretDB databases (they hold the metadata table), as PostgreSQL sees them."""
        with self.meta_pool().connection() as conn:
            rows = conn.execute("SELECT table_schema FROM information_schema.tables WHERE table_name = %s",
                                (METADATA_TABLE,)).fetchall()
        return {r[0] for r in rows}

    def doctor(self) -> list[Check]:
        from localdev.services.install import ProvisionError, cache_dir, which

        if self.flavor == "mongo-java-server":
            try:
                jvm = install_mjs.find_java()
                java, javac = jvm.java, jvm.javac
            except ProvisionError as exc:
                return [Check("java for mongo-java-server", False, str(exc), install_mjs.JAVA_FIX)]
            checks = [Check("java for mongo-java-server", bool(javac), f"{java}, javac {javac or 'missing'}",
                            "" if javac else install_mjs.JAVA_FIX)]
            lib = install_mjs.cached_lib()
            checks.append(Check("mongo-java-server jars", True, f"{install_mjs.VERSION} in {lib}" if lib else
                                "not yet obtained: `localdev up` downloads them (or fetches them with Maven)"))
            return checks
        if self.flavor == "mongodb":
            ok = self.ctx.runtime != "native"
            return [Check("mongo flavor", ok, "mongodb (containers)",
                          "" if ok else 'flavor = "mongodb" needs runtime = "docker"')]
        explicit = self.option("bin") or os.environ.get("LOCALDEV_FERRETDB_BIN")
        cached = cache_dir("ferretdb", install.VERSION) / "ferretdb"
        if explicit:
            ok = Path(explicit).is_file() and os.access(explicit, os.X_OK)
            return [Check("ferretdb binary", ok, explicit, "" if ok else "point `bin` at an executable FerretDB v1")]
        if cached.is_file():
            return [Check("ferretdb binary", True, f"FerretDB {install.VERSION} in {cached}")]
        go = which("go")
        return [Check("ferretdb binary", True, f"not yet obtained: `localdev up` downloads it, or builds it with "
                                               f"{go or 'Go (not found: needed without internet)'}")]

    # -- namespaces ------------------------------------------------------------------
    def password(self, ns) -> str:
        return ns.secret("postgres", "password") if self.on_postgres else ns.secret("mongo", "password")

    def namespace_env(self, ns) -> dict[str, str]:
        return self._env(ns, self.client_host, CA_FILE)

    def _env(self, ns, host: str, ca_file: str | None = None) -> dict[str, str]:
        """`ca_file`: how a TLS URI names the CA's certificate (the placeholder a client fills, or a path)."""
        db, where = ns.db_name, f"{host}:{self.port}"
        user, password = quote(ns.db_name, safe=""), quote(self.password(ns), safe="")
        if self.on_postgres:
            # FerretDB v1 speaks only PLAIN (passed through to PostgreSQL as the namespace's role)
            uri = f"mongodb://{user}:{password}@{where}/{db}?authMechanism=PLAIN"
            if self.tls:
                uri += f"&tls=true&tlsCAFile={ca_file or self._ca_file()}"
        elif self.flavor == "mongo-java-server":
            # the drivers' default mechanism (SCRAM-SHA-256, negotiated); the path's database is the auth source
            uri = f"mongodb://{user}:{password}@{where}/{db}"
            if self.tls:
                uri += f"?tls=true&tlsCAFile={ca_file or self._ca_file()}"
        elif self.flavor == "mongodb":
            uri = f"mongodb://{user}:{password}@{where}/{db}?authSource={db}"
        else:
            uri = f"mongodb://{where}/{db}"  # SQLite backend: FerretDB has no authentication at all
        if self.ctx.endpoint is not None:
            from urllib.parse import urlencode

            # The url's settings (TLS, a replica set) hold for namespaces; its auth settings are the admin's.
            params = self.ctx.endpoint.params(drop=("authSource", "authMechanism", "authMechanismProperties"))
            if params:
                uri += ("&" if "?" in uri else "?") + urlencode(params)
        return {"MONGODB_URI": uri}

    def create_namespace(self, ns) -> dict[str, str]:
        if self.on_postgres:
            self._create_schema(ns)
        elif self.scram:
            self._create_user(ns)
        return self.namespace_env(ns)

    def _create_schema(self, ns) -> None:
        """The namespace's database as a schema owned by its role, metadata table included.

        It is created through FerretDB (as localdev's role) so FerretDB's metadata cache knows it, then
        handed to the namespace's role: a tenant never needs CREATE on the `ferretdb` database, which
        would let it make (and own) databases of other names."""
        from psycopg import sql

        schema = role = sql.Identifier(ns.db_name)
        self._meta_db_acl(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(META_DB), role))
        with self.meta_pool().connection() as conn:
            exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (ns.db_name,)).fetchone()
        if not exists:
            db = self.admin()[ns.db_name]
            db.create_collection(INIT_COLLECTION)  # FerretDB makes a database only with its first collection
            db.drop_collection(INIT_COLLECTION)
        with self.meta_pool().connection() as conn:
            conn.execute(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(schema, role))
            conn.execute(sql.SQL("ALTER TABLE {}.{} OWNER TO {}").format(schema, sql.Identifier(METADATA_TABLE), role))

    def _create_user(self, ns) -> None:
        from pymongo.errors import OperationFailure

        db = self.admin()[ns.db_name]
        fields: dict[str, Any] = {"pwd": self.password(ns), "roles": [{"role": "readWrite", "db": ns.db_name}]}
        if ns.max_connections is not None:  # the namespace's connection budget (our launcher enforces it)
            fields["customData"] = {"maxConnections": int(ns.max_connections)}
        try:
            db.command("createUser", ns.db_name, **fields)
        except OperationFailure as exc:
            if exc.code != 51003:  # already exists: a create being redone
                raise
            db.command("updateUser", ns.db_name, **fields)

    def drop_namespace(self, ns) -> None:
        from pymongo.errors import ConnectionFailure, OperationFailure

        if not self.on_postgres:
            try:
                if self.scram:
                    self.admin()[ns.db_name].command("dropAllUsersFromDatabase")
                self.admin().drop_database(ns.db_name)
            except ConnectionFailure as exc:
                raise MongoError(f"could not drop database {ns.db_name}: mongo is not reachable ({exc})") from None
            return
        from psycopg import sql

        schema = sql.Identifier(ns.db_name)
        with self.meta_pool().connection() as conn:
            exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (ns.db_name,)).fetchone()
            if exists:  # so localdev's role may drop it, through FerretDB, which then forgets it
                conn.execute(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(schema, sql.Identifier(ADMIN_ROLE)))
        if exists:
            try:
                self.admin().drop_database(ns.db_name)
            except (ConnectionFailure, OperationFailure):
                pass  # FerretDB is down (it reloads its metadata at start) or never knew it: drop it below
            with self.meta_pool().connection() as conn:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(schema))
        with self.pg.pool().connection() as conn:  # else the postgres service cannot drop the role
            has_role = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ns.db_name,)).fetchone()
        if has_role:
            self._meta_db_acl(sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(sql.Identifier(META_DB), schema))

    def _meta_db_acl(self, statement) -> None:
        """GRANT/REVOKE on the one shared `ferretdb` database, one at a time: each rewrites the same pg_database
        row, and concurrent ones fail with "tuple concurrently updated" (32 parallel creates hit it)."""
        with self.pg.pool().connection() as conn, conn.transaction():
            with advisory_lock(conn, "ferretdb-acl", transaction=True):
                conn.execute(statement)

    def missing_debian_packages(self) -> list[str]:
        return install_mjs.missing_debian_packages() if self.flavor == "mongo-java-server" else []

    def snapshot_copier(self):
        if self.flavor == "ferretdb" and not self.on_postgres:
            return None  # FerretDB's SQLite backend has no users: nothing keeps a snapshot from its tenants
        from localdev.services.mongo.snapshot import DatabaseCopier, StorageCopier

        return StorageCopier(self) if self.flavor == "mongo-java-server" else DatabaseCopier(self)

    # -- seeds -----------------------------------------------------------------------
    @classmethod
    def load_fixtures(cls, folder: Path) -> dict:
        """seeds/mongo/<collection>.json: documents (Extended JSON), each file streamed and every document
        checked; <collection>.indexes.json: a list of {"key": {...}, ...options}."""
        from localdev.services.mongo.seeds import load

        return load(folder)

    def seed(self, ns, fixtures: dict) -> Undo:
        """As the namespace's own credentials; on failure this call's collections, indexes and documents go."""
        import pymongo

        from localdev.services.mongo.seeds import apply

        client: pymongo.MongoClient = pymongo.MongoClient(self._env(ns, self.host)["MONGODB_URI"],  # from here
                                                          serverSelectionTimeoutMS=5000)
        with undoing(commit=client.close) as undo:
            undo.add(client.close)  # the last step of a rollback: the others need the client
            apply(client.get_default_database(), ns.name, fixtures, undo)
        return undo



def _mongo_database(env: dict):
    import pymongo

    client: pymongo.MongoClient = pymongo.MongoClient(env["MONGODB_URI"])
    yield client.get_default_database()
    client.close()
