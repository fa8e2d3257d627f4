"""DynamoDB seeds: seeds/dynamodb/<table>.json = {"table": <CreateTable parameters>, "items": [<plain JSON>]}.
An item may instead be written in DynamoDB's own JSON as {"$dynamodb": {"pk": {"S": "a"}, "tags": {"SS": [..]}}}:
how sets and binaries outside the key attributes are written (exports do so).
The table's parameters may also hold "TimeToLiveSpecification" ({"AttributeName": ..., "Enabled": true}),
set with UpdateTimeToLive once the table is made.

Each file is streamed twice and never held whole: `load` checks every item, keeping only the table
definition and a count; `apply` reads the items again and writes them 25 to a BatchWriteItem. Both passes
check items with the same `_checked_item`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from localdev.errors import BadInput
from localdev.jsonstream import JsonStream
from localdev.progress import Counter
from localdev.services.dynamodb import DynamoDBError, delete_table
from localdev.undo import Undo

TABLE_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
PYTHON_TYPES = {"S": (str,), "N": (int, Decimal), "B": (str,)}  # B: base64 text in a plain-JSON fixture
# An item written in DynamoDB's own JSON, for what plain JSON cannot hold (sets, binaries outside the keys):
# {"$dynamodb": {"pk": {"S": "a"}, "tags": {"SS": ["x", "y"]}}}
TYPED_ITEM = "$dynamodb"
TYPED_KINDS = ("S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS", "L", "M")
TYPED_PYTHON = {"S": (str,), "N": (Decimal,), "B": (bytes,)}
SECTIONS = ("table", "items")
SHAPE = 'expected an object {"table": <CreateTable parameters>, "items": [...]}'
BATCH = 25  # BatchWriteItem's limit
# DynamoDB Local writes an item at a time (mostly SQLite syncing): a few BatchWriteItem in flight keep it
# busy, more than three did not help (bench/results/design-measurements.md).
WRITERS = 3
DECODER = json.JSONDecoder(parse_float=Decimal)


@dataclass
class TableFixture:
    """One seeds/dynamodb/<table>.json, validated: CreateTable parameters and the number of items."""

    path: Path
    table: dict
    count: int = 0
    types: dict[str, str] = field(default_factory=dict)  # attribute -> S/N/B, for key and index attributes
    keys: list[str] = field(default_factory=list)  # the table's key attributes
    ttl: dict | None = None  # "TimeToLiveSpecification" in the table's parameters: set after CreateTable

    @property
    def name(self) -> str:
        return self.table["TableName"]

    def items(self) -> Iterator[dict]:
        """The items, validated, B attributes decoded, read from the file again."""
        return _checked_items(self)


def load(folder: Path) -> list[TableFixture]:
    fixtures = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.suffix != ".json" or not path.is_file():
            raise BadInput(f"{path}: dynamodb seeds are <table>.json files")
        fixtures.append(_table_fixture(path))
    return fixtures


def _sections(stream: JsonStream) -> Iterator[tuple[str, int]]:
    """The file's top-level keys, refusing any other than "table" and "items", and repeats."""
    if stream.peek() != "{":
        raise stream.error(SHAPE)
    seen = set()
    for key, line in stream.members():
        if key not in SECTIONS:
            raise stream.error(f"unknown key {key!r}; allowed: {', '.join(SECTIONS)}", line)
        if key in seen:
            raise stream.error(f"key {key!r} appears twice", line)
        seen.add(key)
        yield key, line


def _table_fixture(path: Path) -> TableFixture:
    """The table checked, then every item: one reading when "table" comes first, two when "items" does."""
    table, fx = None, None
    with JsonStream(path, DECODER) as stream:
        for key, line in _sections(stream):
            if key == "table":
                table = stream.value()
                if not isinstance(table, dict):
                    raise stream.error('"table" must be an object of CreateTable parameters', line)
            elif table is None:  # items before the table: passed over now, checked on a second reading
                for _ in _items_here(stream, None, line):
                    pass
            else:
                fx = _checked_table(path, dict(table))
                fx.count = sum(1 for _ in _items_here(stream, fx, line))
        stream.end()
    if table is None:
        raise BadInput(f"{path}: {SHAPE}")
    if fx is None:
        fx = _checked_table(path, dict(table))
        fx.count = sum(1 for _ in fx.items())
    return fx


def _checked_table(path: Path, table: dict) -> TableFixture:
    def bad(problem: str) -> BadInput:
        return BadInput(f"{path}: {problem}")

    ttl = table.pop("TimeToLiveSpecification", None)  # not a CreateTable parameter: UpdateTimeToLive's
    if ttl is not None and (not isinstance(ttl, dict) or set(ttl) != {"AttributeName", "Enabled"}
                            or not isinstance(ttl["AttributeName"], str) or ttl["Enabled"] is not True):
        raise bad('TimeToLiveSpecification must be {"AttributeName": "<attribute>", "Enabled": true}')
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
    return TableFixture(path=path, table=table, types=types, keys=keys, ttl=ttl)


def _checked_items(fx: TableFixture) -> Iterator[dict]:
    with JsonStream(fx.path, DECODER) as stream:
        for key, line in _sections(stream):
            if key == "table":
                stream.value()
            else:
                yield from _items_here(stream, fx, line)
        stream.end()


def _items_here(stream: JsonStream, fx: TableFixture | None, line: int) -> Iterator[Any]:
    """The "items" array that comes next in `stream`, each item checked against `fx` (if known yet)."""
    if stream.peek() != "[":
        raise stream.error('"items" must be a list of objects', line)
    for number, (line, item) in enumerate(stream.array(), 1):
        yield _checked_item(fx, item, f"{fx.path}:{line}: item {number}") if fx else item


def _checked_item(fx: TableFixture, item, where: str) -> dict:
    if not isinstance(item, dict):
        raise BadInput(f"{where}: expected an object")
    typed = list(item) == [TYPED_ITEM]
    item = _from_typed_item(item[TYPED_ITEM], where) if typed else dict(item)
    for attr, kind in fx.types.items():
        if attr not in item:
            if attr in fx.keys:
                raise BadInput(f"{where}: key attribute {attr!r} is missing")
            continue  # an index key may be absent (the item is then not in that index)
        value = item[attr]
        if isinstance(value, bool) or not isinstance(value, (TYPED_PYTHON if typed else PYTHON_TYPES)[kind]):
            raise BadInput(f"{where}: attribute {attr!r} must be of type {kind}, got {value!r}")
        if kind == "B" and not typed:
            try:
                item[attr] = base64.b64decode(str(value), validate=True)  # a str: checked just above
            except (binascii.Error, ValueError):
                raise BadInput(f"{where}: attribute {attr!r} (type B) must be base64 text") from None
    return item


def _from_typed_item(item, where: str) -> dict:
    """{"$dynamodb": <an item in DynamoDB's JSON>} as the Python values boto3 writes back exactly: sets as sets,
    binaries (base64 text) as bytes, numbers as Decimal."""
    if not isinstance(item, dict) or not item:
        raise BadInput(f"{where}: {TYPED_ITEM} must hold an item in DynamoDB's JSON, e.g. "
                       '{"pk": {"S": "a"}, "tags": {"SS": ["x"]}}')
    return {name: _from_typed(value, f"{where}: attribute {name!r}") for name, value in item.items()}


def _from_typed(value, where: str):
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in TYPED_KINDS:
        raise BadInput(f"{where}: expected one of {', '.join(TYPED_KINDS)} as a single key, e.g. {{\"S\": \"text\"}}, "
                       f"got {value!r}")
    kind, inner = next(iter(value.items()))

    def bad(what: str) -> BadInput:
        return BadInput(f"{where}: {kind} needs {what}, got {inner!r}")

    def number(text) -> Decimal:
        try:
            n = Decimal(text) if isinstance(text, str) else None
        except ArithmeticError:
            n = None
        if n is None or not n.is_finite():
            raise bad("numbers written as strings, e.g. \"42\"")
        return n

    def binary(text) -> bytes:
        if not isinstance(text, str):
            raise bad("base64 text")
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise bad("base64 text") from None

    if kind == "S":
        if not isinstance(inner, str):
            raise bad("a string")
        return inner
    if kind == "N":
        return number(inner)
    if kind == "B":
        return binary(inner)
    if kind in ("BOOL", "NULL"):
        if not isinstance(inner, bool) or (kind == "NULL" and inner is not True):
            raise bad("true" if kind == "NULL" else "true or false")
        return inner if kind == "BOOL" else None
    if kind in ("SS", "NS", "BS"):
        if not isinstance(inner, list) or not inner:
            raise bad("a non-empty list (DynamoDB has no empty sets)")
        if kind == "SS" and not all(isinstance(m, str) for m in inner):
            raise bad("a list of strings")
        members = list(inner) if kind == "SS" else [number(m) if kind == "NS" else binary(m) for m in inner]
        if len(set(members)) != len(members):
            raise bad("members that differ (DynamoDB refuses a duplicate in a set)")
        return set(members)
    if kind == "L":
        if not isinstance(inner, list):
            raise bad("a list")
        return [_from_typed(v, f"{where}[{i}]") for i, v in enumerate(inner)]
    if not isinstance(inner, dict):  # M
        raise bad("an object")
    return {k: _from_typed(v, f"{where}.{k}") for k, v in inner.items()}


# -- applying ------------------------------------------------------------------------------------
def apply(client, namespace: str, fixtures: list[TableFixture], undo: Undo) -> None:
    """Create the tables that do not exist and write the items. `undo` learns how to take each step back:
    delete a table this call created; in a table that existed, delete the items it added and put back
    the former versions of those it overwrote."""
    from botocore.exceptions import ClientError

    existing = set(name for page in client.get_paginator("list_tables").paginate() for name in page["TableNames"])
    where = fixtures[0].path.parent if fixtures else "seeds/dynamodb"
    try:
        for fx in fixtures:
            where = fx.path
            if fx.name in existing:
                key_names = [k["AttributeName"] for k in client.describe_table(TableName=fx.name)["Table"]["KeySchema"]]
            else:
                client.create_table(**fx.table)
                undo.add(partial(delete_table, client), fx.name)
                if fx.ttl:
                    client.update_time_to_live(TableName=fx.name, TimeToLiveSpecification=fx.ttl)
                key_names = fx.keys
            _write_items(client, namespace, fx, key_names, undo if fx.name in existing else None)
    except ClientError as exc:
        raise BadInput(f"{where}: {exc.response['Error'].get('Message') or exc}") from None


def _write_items(client, namespace: str, fx: TableFixture, key_names: list[str], undo: Undo | None) -> None:
    """Stream the file's items into the table; with `undo`, first note what each batch overwrites."""
    from boto3.dynamodb.types import TypeSerializer

    serialize = TypeSerializer().serialize
    progress = Counter(namespace, "dynamodb", fx.name, fx.count)

    def write(batch: list[dict]) -> None:
        if undo is not None:
            undo.add(partial(_restore, client, fx.name), *_former_versions(client, fx.name, key_names, batch))
        _write(client, fx.name, [{"PutRequest": {"Item": item}} for item in batch], str(fx.path))
        progress.add(len(batch))

    items = ({k: serialize(v) for k, v in item.items()} for item in fx.items())
    _in_lanes(items, partial(_identity, key_names=key_names), write)


def _in_lanes(items: Iterator[dict], key, write, lanes: int = WRITERS) -> None:
    """`write(batch)` for batches of BATCH items, on `lanes` threads. Items with the same key share a lane,
    in file order, so the last one in the file wins, as when written one by one."""
    pools = [ThreadPoolExecutor(1, thread_name_prefix="dynamodb-seed") for _ in range(lanes)]
    buffers: list[list[dict]] = [[] for _ in range(lanes)]
    in_flight: deque = deque()

    def send(lane: int) -> None:
        in_flight.append(pools[lane].submit(write, buffers[lane]))
        buffers[lane] = []
        while len(in_flight) > 4 * lanes:  # bounded: the reader waits for the writers
            in_flight.popleft().result()

    try:
        for item in items:
            lane = hash(key(item)) % lanes
            buffers[lane].append(item)
            if len(buffers[lane]) == BATCH:
                send(lane)
        for lane in range(lanes):
            if buffers[lane]:
                send(lane)
        while in_flight:
            in_flight.popleft().result()
    finally:  # after a failure no batch may still be in flight when the rollback starts
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)


def _write(client, table: str, requests: list[dict], where: str) -> None:
    """One BatchWriteItem (at most 25 requests), retrying what DynamoDB Local leaves unprocessed."""
    pending = {table: requests}
    for _ in range(10):
        pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        if not pending:
            return
    raise DynamoDBError(f"{where}: DynamoDB Local left items unprocessed after 10 tries")


def _identity(item: dict, key_names: list[str]) -> tuple:
    """An item's key, comparable however its numbers are written (DynamoDB answers 1 for 1.0)."""
    return tuple((Decimal(v) if t == "N" else v) for k in key_names for t, v in item.get(k, {}).items())


def _former_versions(client, table: str, key_names: list[str], batch: list[dict]) -> tuple[list, list]:
    """Of the batch's keys: those not in the table yet, and the current items of the others."""
    keys = {_identity(item, key_names): {k: item[k] for k in key_names if k in item} for item in batch}
    found, pending = [], {table: {"Keys": list(keys.values())}}
    for _ in range(10):
        answer = client.batch_get_item(RequestItems=pending)
        found += answer.get("Responses", {}).get(table, [])
        pending = answer.get("UnprocessedKeys") or {}
        if not pending:
            present = {_identity(item, key_names) for item in found}
            return [key for ident, key in keys.items() if ident not in present], found
    raise DynamoDBError(f"table {table}: DynamoDB Local left keys unread after 10 tries")


def _restore(client, table: str, added: list[dict], former: list[dict]) -> None:
    requests = [{"DeleteRequest": {"Key": key}} for key in added] + [{"PutRequest": {"Item": item}} for item in former]
    for start in range(0, len(requests), BATCH):
        _write(client, table, requests[start:start + BATCH], f"table {table}")

