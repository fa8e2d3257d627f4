"""Redis (ElastiCache's local stand-in): Debian's redis-server natively, the official image in containers.

A namespace is an ACL user ``ns_<name>`` with a random password, confined to keys and channels under its
prefix ``<name>:`` (REDIS_KEY_PREFIX) and to one logical database of its own, the only one it may SELECT
(REDIS_URL names it). Key patterns alone let SCAN, RANDOMKEY and client-side-caching broadcasts list
other namespaces' key names; in a database of its own a namespace's SCAN and KEYS see its keys only.
docs/redis.md has the commands measured against this design and what it costs.

Example::

    from localdev.cluster import Cluster
    cluster = Cluster()
    cluster.up(services=["postgres", "redis"])
    cluster.namespaces.create("demo")
    env = cluster.namespaces.env("demo")
    # redis.Redis.from_url(env["REDIS_URL"]).set(env["REDIS_KEY_PREFIX"] + "greeting", "hi")
"""

from __future__ import annotations

import hashlib
import re
import threading
from functools import partial
from pathlib import Path
from secrets import token_hex

from localdev.errors import BadInput, LocalDevError
from localdev.runtimes.base import ContainerSpec, ProcessSpec
from localdev.services.base import CA_FILE, Check, Option, PytestClient, Resources, Secret, Service
from localdev.services.redis import install
from localdev.services.redis.install import IMAGE, RedisNotFound
from localdev.state import write_private
from localdev.undo import Undo, undoing

ADMIN = "localdev"
ACL_FILE = "users.acl"
USER_PREFIX = "ns_"
# A namespace's rules after `+@all`, measured on 7.0.15 (docs/redis.md). -@admin and -@dangerous take away
# server control and the commands that reach every key (KEYS, SORT ... BY, MIGRATE, FLUSHALL, FLUSHDB,
# SWAPDB, CLIENT LIST/KILL, MONITOR, ACL, CONFIG, DEBUG, INFO).
NAMESPACE_RULES = (
    "+@all", "-@admin", "-@dangerous",
    # Given back: in a database no one else can SELECT, they see the namespace's own keys only; SORT
    # refuses BY/GET patterns by itself unless a user may read every key; INFO tells counts, not names.
    "+keys", "+sort", "+sort_ro", "+info",
    # Write into another database without SELECTing it.
    "-move", "-copy",
    # BCAST tracking sends the name of every key anyone writes, in any database, whatever the ACL.
    "-client|tracking",
    # One function library and one script cache for the whole server: another namespace could list,
    # replace, flush or kill them.
    "-function", "-fcall", "-fcall_ro", "-script|flush", "-script|kill",
    # They list every channel anyone subscribes to, whatever the channel patterns.
    "-pubsub|channels", "-pubsub|shardchannels",
    # Per-database key counts and memory of the whole server.
    "-memory|stats", "-memory|doctor", "-memory|malloc-stats",
)
_SELECT_RULE = re.compile(r"(?:^|\s)\+select\|(\d+)(?:\s|$)")


class RedisError(LocalDevError):
    pass


class Redis(Service):
    name = "redis"
    default_port = 6379
    url_schemes = ("redis", "rediss")
    ready_timeout = 30.0
    env_keys = ("REDIS_URL", "REDIS_KEY_PREFIX")
    # Hex, so the password goes into REDIS_URL as it is.
    secrets = (Secret("redis", "password", lambda: token_hex(24)),)
    # Keys are in the append-only file, users in the ACL file: both under data_dir.
    loses_state_on_restart = False
    options = {
        "bin": Option("", str, help="path of redis-server (else PATH)"),
        "image": Option(IMAGE, str),
        "databases": Option(1024, int, help="logical databases: one per namespace (database 0 is nobody's), so "
                                            "at most this minus one namespaces; about 0.5 KB each"),
    }

    def __init__(self, ctx):
        super().__init__(ctx)
        self._admin = None
        self._lock = threading.Lock()

    # -- files and credentials -------------------------------------------
    @property
    def admin_password(self) -> str:
        return self.ctx.state.secret("redis_admin_password")

    @property
    def acl_path(self) -> Path:
        return self.data_dir / ACL_FILE

    @property
    def conf_path(self) -> Path:
        return self.data_dir / "redis.conf"

    def _settings(self, data_dir: str, bind: str, port: int) -> list[tuple[str, str]]:
        return [
            ("bind", bind), *self._port_settings(port),
            ("protected-mode", "yes"), ("daemonize", "no"),
            ("dir", data_dir), ("aclfile", f"{data_dir}/{ACL_FILE}"),
            # everysec: a killed server loses nothing it acknowledged (the write reached the kernel);
            # an OS crash or power loss can lose about the last second.
            ("appendonly", "yes"), ("appendfsync", "everysec"), ("save", '""'),
            ("databases", str(int(self.option("databases")))),
            ("enable-debug-command", "no"), ("enable-module-command", "no"),
            ("logfile", '""'), ("loglevel", "notice"),
        ]

    def _port_settings(self, port: int) -> list[tuple[str, str]]:
        if not self.tls:
            return [("port", str(port))]
        # Beyond loopback the port speaks TLS only (port 0 turns the plain one off: redis binds both kinds
        # to the same addresses). Clients are not asked for certificates: the ACL password authenticates.
        assert self.ctx.server_cert is not None  # serves_tls() said so
        cert = self.ctx.server_cert()
        return [("port", "0"), ("tls-port", str(port)), ("tls-cert-file", str(cert.cert)),
                ("tls-key-file", str(cert.key)), ("tls-ca-cert-file", str(cert.ca)), ("tls-auth-clients", "no")]

    def serves_tls(self) -> bool:
        return self.ctx.runtime == "native" and self.ctx.server_cert is not None

    def _tls_kwargs(self) -> dict:
        """redis-py's arguments for localdev's own connections: the cluster CA where the server speaks TLS."""
        if not self.tls:
            return {}
        assert self.ctx.server_cert is not None
        return {"ssl": True, "ssl_ca_certs": str(self.ctx.server_cert().ca)}

    def _acl_lines(self, password_hash: str) -> list[str]:
        return ["user default off resetchannels -@all",
                f"user {ADMIN} on #{password_hash} ~* &* +@all"]

    def _write_acl_file(self) -> None:
        """Admin and `default` as they must be; every other user as the server last saved it."""
        keep = []
        if self.acl_path.exists():
            keep = [line for line in self.acl_path.read_text().splitlines()
                    if line.strip() and not line.startswith(("user default ", f"user {ADMIN} "))]
        digest = hashlib.sha256(self.admin_password.encode()).hexdigest()
        write_private(self.acl_path, "\n".join(self._acl_lines(digest) + keep) + "\n")

    # -- running ---------------------------------------------------------
    def check(self) -> None:
        if self.ctx.runtime == "native":
            install.find_server(self.option("bin"))
        if int(self.option("databases")) < 2:
            raise BadInput("[services.redis] databases must be at least 2: database 0 is nobody's and each "
                           "namespace needs one")

    def install(self) -> None:
        install.check_version(install.find_server(self.option("bin")))

    def provision(self) -> None:
        self.install()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self._write_acl_file()
        settings = self._settings(str(self.data_dir), self.ctx.host, self.port)
        write_private(self.conf_path, "".join(f"{key} {value}\n" for key, value in settings))

    def native_spec(self) -> ProcessSpec:
        server = install.find_server(self.option("bin"))
        # No secret on the command line: the config names the ACL file, which holds only a hash.
        return ProcessSpec(argv=[str(server), str(self.conf_path)], cwd=self.data_dir, ports=[self.port],
                           stop_timeout=20)

    def container_spec(self) -> ContainerSpec:
        args = [a for key, value in self._settings("/data", "0.0.0.0", 6379)
                for a in (f"--{key}", "" if value == '""' else value)]
        return ContainerSpec(
            image=self.option("image"),
            command=["sh", "-c", CONTAINER_START, "redis-start", *args],
            # redis-cli reads REDISCLI_AUTH (the healthcheck); the start script hashes it into the ACL file.
            env={"REDISCLI_AUTH": self.admin_password},
            ports={6379: self.port}, volumes={"redis-data": "/data"},
            healthcheck=["sh", "-c", f"redis-cli --user {ADMIN} --no-auth-warning ping | grep -q PONG"])

    def container_resources(self) -> Resources:
        return Resources(memory="64Mi", memory_limit="512Mi", cpu="50m", cpu_limit="1", storage="2Gi")

    def external_admin(self, host: str, port: int) -> tuple[str, str | None]:
        return f"redis://{ADMIN}@{host}:{port}/0", "redis_admin_password"

    def _login(self) -> dict:
        """redis-py's connection arguments for localdev's own user (an external url's, there)."""
        endpoint = self.ctx.endpoint
        if endpoint is None:
            return {"host": self.host, "port": self.port, "username": ADMIN, "password": self.admin_password,
                    **self._tls_kwargs()}
        login = {"host": endpoint.host, "port": endpoint.port, "username": endpoint.user or None,
                 "password": endpoint.password}
        if endpoint.scheme == "rediss":
            login.update({"ssl": True, "ssl_ca_certs": dict(endpoint.query).get("ssl_ca_certs")})
        return login

    def admin(self):
        """Warm connections as the cluster's own user, on database 0; redis-py reconnects after a restart."""
        import redis

        with self._lock:
            if self._admin is None:
                self._admin = redis.Redis(**self._login(), socket_timeout=10, socket_connect_timeout=3,
                                          decode_responses=True, client_name="localdev")
            return self._admin

    def _on(self, db: int):
        """A short-lived admin connection on database `db` (the warm ones stay on 0)."""
        import redis

        return redis.Redis(**self._login(), db=db, socket_timeout=30, socket_connect_timeout=3,
                           single_connection_client=True)

    def ready(self) -> bool:
        import redis

        try:
            return self.admin().ping() is True
        except (redis.RedisError, OSError):
            return False

    def check_endpoint(self) -> None:
        """The server answers as localdev's user, is 7.0 or later, and lets it manage ACL users (ACL SETUSER,
        LIST, DELUSER) and run the script that finds a free database: proved on a throwaway disabled user."""
        import redis

        where = self.where
        try:
            self.admin().ping()
        except redis.AuthenticationError as exc:
            raise BadInput(f"redis at {where}: the server refused localdev's login ({exc}; the password comes from "
                           "LOCALDEV_REDIS_PASSWORD or [services.redis] password_file)") from None
        except (redis.RedisError, OSError) as exc:
            raise LocalDevError(f"redis at {where} does not answer: {exc}") from None
        probe = f"localdev_probe_{token_hex(4)}"
        steps = (("ACL SETUSER", ("ACL", "SETUSER", probe, "off")), ("ACL LIST", ("ACL", "LIST")),
                 ("ACL DELUSER", ("ACL", "DELUSER", probe)), ("EVAL", ("EVAL", "return 1", "0")),
                 ("ACL SAVE", ("ACL", "SAVE")))
        user = self.ctx.endpoint.user if self.ctx.endpoint else ADMIN
        for command, args in steps:
            try:
                self.admin().execute_command(*args)
            except redis.exceptions.NoPermissionError:
                raise BadInput(f"the redis user {user or 'default'!r} at {where} may not run {command} (each "
                               "namespace is an ACL user confined to its keys and database): give it +@all, or at "
                               "least +acl +eval +select +scan +unlink +dbsize, on all keys") from None
            except redis.ResponseError as exc:
                if command != "ACL SAVE":
                    raise LocalDevError(f"redis at {where}: {command} failed: {exc}") from None
                raise BadInput(f"redis at {where} cannot save its users ({exc}): namespaces' users would be lost "
                               "when it restarts; give the server an aclfile") from None
        self.after_ready()

    def after_ready(self) -> None:
        version = self.admin().info("server").get("redis_version", "0")
        if tuple(int(p) for p in version.split(".")[:2]) < install.MINIMUM:
            raise RedisError(f"the redis server is {version}; localdev needs 7.0 or later (namespaces rely on ACL "
                             "checks inside scripts): use a newer image or redis-server")

    def close(self) -> None:
        with self._lock:
            admin, self._admin = self._admin, None
        if admin is not None:
            admin.close()

    def doctor(self) -> list[Check]:
        if self.ctx.runtime != "native":
            return [Check("redis image", True, self.option("image"))]
        try:
            server = install.find_server(self.option("bin"))
            version = install.check_version(server)
        except (RedisNotFound, LocalDevError) as exc:
            return [Check("redis-server", False, "not usable", str(exc))]
        return [Check("redis-server", True, f"Redis {'.'.join(map(str, version))} at {server}")]

    def missing_debian_packages(self) -> list[str]:
        return install.missing_debian_packages()

    @classmethod
    def pytest_clients(cls) -> list[PytestClient]:
        return [PytestClient("redis", _redis_client, scope="function",
                             doc="A redis-py client (str responses) on the namespace's database as its own user; "
                                 "keys must start with REDIS_KEY_PREFIX. Closed after the test.")]

    # -- namespaces ------------------------------------------------------
    @staticmethod
    def user(ns) -> str:
        return USER_PREFIX + ns.name.replace("-", "_")

    @staticmethod
    def key_prefix(ns) -> str:
        return f"{ns.name}:"

    @staticmethod
    def password(ns) -> str:
        return ns.secret("redis", "password")

    def _rules(self, ns, db: int) -> list[str]:
        prefix = self.key_prefix(ns)
        return ["reset", "on", f">{self.password(ns)}", f"~{prefix}*", f"&{prefix}*", *NAMESPACE_RULES,
                # Redis 7.0 has no rule for databases; a first-argument rule pins SELECT to one value.
                "-select", f"+select|{db}"]

    def _acl_users(self) -> dict[str, int | None]:
        """Namespace users the server has, with the database their SELECT rule allows."""
        out = {}
        for line in self.admin().execute_command("ACL", "LIST"):
            parts = line.split(" ", 2)
            if len(parts) > 1 and parts[1].startswith(USER_PREFIX):
                match = _SELECT_RULE.search(line)
                out[parts[1]] = int(match.group(1)) if match else None
        return out

    def database(self, ns) -> int | None:
        """The namespace's database, or None if it has no user here. Asked of the server each time (one
        round trip): the ACL is the only record, and another process may have dropped and remade it."""
        found = self.admin().acl_getuser(self.user(ns))
        for rule in (found or {}).get("commands", ()):
            match = _SELECT_RULE.search(rule)
            if match:
                return int(match.group(1))
        return None

    def _own_database(self, ns) -> int:
        db = self.database(ns)
        if db is None:
            raise RedisError(f"namespace {ns.name!r} has no redis user: it was made before redis ran in this "
                             f"cluster; delete and create it again")
        return db

    def _url(self, ns, host: str, ca_file: str = CA_FILE) -> str:
        """`ca_file`: how a TLS URL names the CA's certificate (the placeholder a client fills, or a path)."""
        host = f"[{host}]" if ":" in host else host
        where = f"{self.user(ns)}:{self.password(ns)}@{host}:{self.port}/{self._own_database(ns)}"
        endpoint = self.ctx.endpoint
        if endpoint is not None:  # as its url says: rediss:// and ssl_ca_certs hold for namespaces too
            from urllib.parse import urlencode

            tail = f"?{urlencode(endpoint.query, safe='/')}" if endpoint.query else ""
            return f"{endpoint.scheme}://{where}{tail}"
        if self.tls:  # redis-py passes an unknown query argument on to its SSL connection
            return f"rediss://{where}?ssl_ca_certs={ca_file}"
        return f"redis://{where}"

    def namespace_env(self, ns) -> dict[str, str]:
        return {"REDIS_URL": self._url(ns, self.client_host), "REDIS_KEY_PREFIX": self.key_prefix(ns)}

    def create_namespace(self, ns) -> dict[str, str]:
        from localdev.services.postgres.locks import advisory_lock

        user = self.user(ns)
        # One allocation at a time, across the agent's threads and every agent sharing the registry (on any
        # machine): a lock in the registry's server, released with its transaction.
        with self.ctx.services["postgres"].pool().connection() as conn, conn.transaction(), \
                advisory_lock(conn, "redis-databases", transaction=True):
            users = self._acl_users()
            db = users.get(user)
            if db is None:
                db = self._free_database(set(users.values()))
            self.admin().execute_command("ACL", "SETUSER", user, *self._rules(ns, db))
            self.admin().execute_command("ACL", "SAVE")
        return self.namespace_env(ns)

    def adopt_env(self, ns, env: dict[str, str]) -> str | None:
        """A restored namespace gets back its old database number (its old REDIS_URL works): the database it
        was given is swapped with that one, if no namespace has it and it is empty."""
        match = re.search(r"/(\d+)$", env.get("REDIS_URL", ""))
        if not match:
            return None
        want, have = int(match.group(1)), self._own_database(ns)
        if want == have:
            return None
        with self.ctx.state.lock("redis-databases"):
            taken = set(self._acl_users().values())
            free = 0 < want < int(self.option("databases")) and want not in taken and \
                self.admin().eval("redis.call('SELECT', ARGV[1]); return redis.call('DBSIZE')", 0, want) == 0
            if not free:
                return (f"redis: namespace {ns.name} could not get its old database {want} back (another namespace "
                        f"of this cluster has it): it is database {have} now, so its REDIS_URL changed")
            self.admin().execute_command("SWAPDB", have, want)
            self.admin().execute_command("ACL", "SETUSER", self.user(ns), *self._rules(ns, want))
            self.admin().execute_command("ACL", "SAVE")
        return None

    def _free_database(self, taken: set) -> int:
        count = int(self.option("databases"))
        for db in range(1, count):
            if db in taken:
                continue
            # Keys without an owner are what a drop interrupted between its steps left: never hand them on.
            if self.admin().eval("redis.call('SELECT', ARGV[1]); return redis.call('DBSIZE')", 0, db) == 0:
                return db
        raise RedisError(f"redis has no free database for another namespace: all {count - 1} are taken (or hold "
                         "keys of an interrupted drop): delete namespaces, or raise [services.redis] databases "
                         "(a restart of redis applies it)")

    def drop_namespace(self, ns) -> None:
        import redis

        try:
            self._drop(ns)
        except redis.ConnectionError as exc:
            raise RedisError(f"could not drop namespace {ns.name!r} in redis: it is not reachable on "
                             f"{self.host}:{self.port} ({exc}); `localdev up` starts it, then delete again") from None

    def _drop(self, ns) -> None:
        user = self.user(ns)
        db = self.database(ns)
        prefix = self.key_prefix(ns)
        if db is not None:
            # First nothing more for its live connections (the rules are checked on every command; channels
            # reset drops its subscribers), keeping the SELECT rule so a drop redone still finds the database.
            self.admin().execute_command("ACL", "SETUSER", user, "off", "resetpass", "resetkeys", "resetchannels")
            self._unlink(db, prefix)
        # Database 0 too: a client that ignored the database in REDIS_URL wrote there.
        self._unlink(0, prefix)
        if db is not None:
            self.admin().execute_command("ACL", "DELUSER", user)
            self.admin().execute_command("ACL", "SAVE")

    def _unlink(self, db: int, prefix: str) -> int:
        """Remove the keys under `prefix` in `db`, with SCAN (KEYS would block the server while it runs)."""
        removed = 0
        conn = self._on(db)
        try:
            batch = []
            for key in conn.scan_iter(match=f"{prefix}*", count=1000):
                batch.append(key)
                if len(batch) == 1000:
                    removed += conn.unlink(*batch)
                    batch = []
            if batch:
                removed += conn.unlink(*batch)
        finally:
            conn.close()
        return removed

    def snapshot_copier(self):
        from localdev.services.redis.snapshot import KeyCopier

        return KeyCopier(self)

    # -- seeds -----------------------------------------------------------
    @classmethod
    def load_fixtures(cls, folder: Path):
        """seeds/redis/*.json: arrays of {"key", "type", "value", "ttl"?}, every one checked first."""
        from localdev.services.redis.seeds import load

        return load(folder)

    def _own_client(self, ns):
        import redis

        return redis.Redis.from_url(self._url(ns, self.host, self._tls_kwargs().get("ssl_ca_certs", CA_FILE)),
                                    socket_timeout=60)

    def seed(self, ns, fixtures) -> Undo:
        """As the namespace's own user; on failure this call's writes are taken back (seeds.apply)."""
        from localdev.services.redis.seeds import apply

        db = self._own_database(ns)
        client = self._own_client(ns)  # from here, as its user
        with undoing(commit=client.close) as undo:
            undo.add(client.close)  # the last step of a rollback
            apply(client, self.key_prefix(ns), fixtures, undo, partial(self.put_back, db), ns.name)
        return undo

    def create_seeded(self, ns, fixtures) -> dict[str, str]:
        """A new namespace's keys need no dumps to put back, nor WATCH: nobody has its credentials yet, and
        a failed create drops it whole."""
        from localdev.services.redis.seeds import apply

        env = self.create_namespace(ns)
        client = self._own_client(ns)
        try:
            apply(client, self.key_prefix(ns), fixtures, None, None, ns.name)
        finally:
            client.close()
        return env

    def put_back(self, db: int, key: bytes | str, dump: bytes | None, pttl: int) -> None:
        """A key as it was before a seed: gone if it did not exist, else restored with its TTL."""
        conn = self._on(db)
        try:
            if dump is None:
                conn.delete(key)
            else:
                conn.restore(key, max(pttl, 0), dump, replace=True)
        finally:
            conn.close()


# The container's start: hash the admin password into the ACL file (keeping the namespace users the server
# saved there), then hand over to the image's entrypoint, which drops to the redis user.
CONTAINER_START = r"""umask 077
set -e
acl=/data/users.acl
hash=$(printf %s "$REDISCLI_AUTH" | sha256sum | cut -d' ' -f1)
{ echo 'user default off resetchannels -@all'
  echo "user localdev on #$hash ~* &* +@all"
  grep -v -e '^user default ' -e '^user localdev ' "$acl" 2>/dev/null || true
} > "$acl.new"
mv "$acl.new" "$acl"
exec docker-entrypoint.sh redis-server "$@"
"""


def _redis_client(env: dict):
    import redis

    client = redis.Redis.from_url(env["REDIS_URL"], decode_responses=True)
    yield client
    client.close()
