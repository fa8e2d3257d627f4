"""DynamoDB's part of an export: seeds/dynamodb/<table>.json = {"table": <CreateTable parameters: keys,
indexes, billing, stream settings, and TimeToLiveSpecification>, "items": [<plain JSON items>]}, one item
per line, written as the scan reads them.

Consistency: a Scan is not a point-in-time read. Each item is read whole, as one write left it, but an item
written while the scan runs may or may not be in the export; there is no snapshot across items or tables.

The seed format holds items as plain JSON, so an item with a set (SS, NS, BS) or a binary value outside the
key attributes cannot be written in it: such a table is refused, naming the item's key.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from localdev.errors import BadInput
from localdev.exports import Digest, Summary, canonical, json_array

TABLE_KEYS = ("TableName", "AttributeDefinitions", "KeySchema")


def dump(svc, ns, folder: Path | None) -> Summary:
    """Write every table (when `folder` is given) and return the namespace's Summary."""
    digest = Digest()
    items = 0
    with svc.client(ns) as client:
        tables = sorted(name for page in client.get_paginator("list_tables").paginate()
                        for name in page["TableNames"])
        for table in tables:
            params = create_parameters(client, table)
            digest.add("table", canonical(params))
            key_types = {d["AttributeName"]: d["AttributeType"] for d in params["AttributeDefinitions"]}
            head = '{"table": ' + json.dumps(params) + ',\n"items": ['
            with json_array(folder / f"{table}.json" if folder else None, head, "]}\n") as writer:
                for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
                    for item in page["Items"]:
                        digest.add("item", table, canonical(_normal(item)))
                        items += 1
                        if writer:
                            writer.add(_plain_item(item, key_types, table, params["KeySchema"]))
    return Summary(counts={"tables": len(tables), "items": items}, checksum=digest.hexdigest())


def create_parameters(client, table: str) -> dict:
    """The CreateTable parameters that make this table again (what DescribeTable and DescribeTimeToLive say)."""
    desc = client.describe_table(TableName=table)["Table"]
    provisioned = (desc.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED") == "PROVISIONED" \
        and (desc.get("ProvisionedThroughput") or {}).get("ReadCapacityUnits", 0) > 0

    def throughput(part: dict) -> dict:
        pt = part.get("ProvisionedThroughput") or {}
        return {"ProvisionedThroughput": {"ReadCapacityUnits": pt.get("ReadCapacityUnits", 1),
                                          "WriteCapacityUnits": pt.get("WriteCapacityUnits", 1)}}

    params: dict = {k: desc[k] for k in TABLE_KEYS}
    params.update(throughput(desc) if provisioned else {"BillingMode": "PAY_PER_REQUEST"})
    gsis = [{"IndexName": i["IndexName"], "KeySchema": i["KeySchema"], "Projection": i["Projection"],
             **(throughput(i) if provisioned else {})} for i in desc.get("GlobalSecondaryIndexes") or []]
    lsis = [{"IndexName": i["IndexName"], "KeySchema": i["KeySchema"], "Projection": i["Projection"]}
            for i in desc.get("LocalSecondaryIndexes") or []]
    if gsis:
        params["GlobalSecondaryIndexes"] = sorted(gsis, key=lambda i: i["IndexName"])
    if lsis:
        params["LocalSecondaryIndexes"] = sorted(lsis, key=lambda i: i["IndexName"])
    stream = desc.get("StreamSpecification") or {}
    if stream.get("StreamEnabled"):
        params["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    ttl = client.describe_time_to_live(TableName=table).get("TimeToLiveDescription") or {}
    if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
        params["TimeToLiveSpecification"] = {"AttributeName": ttl["AttributeName"], "Enabled": True}
    params["AttributeDefinitions"] = sorted(params["AttributeDefinitions"], key=lambda d: d["AttributeName"])
    return params


def _normal(value: dict):
    """A typed attribute value in one form: numbers normalised, sets sorted, binaries as base64."""
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _TYPED:
        kind, inner = next(iter(value.items()))
        return {kind: _TYPED[kind](inner)}
    return {k: _normal(v) for k, v in value.items()}


def _number(text: str) -> str:
    return str(Decimal(text).normalize())


def _b64(data) -> str:
    return base64.b64encode(bytes(data)).decode()


_TYPED: dict[str, Callable] = {
    "S": str, "N": _number, "B": _b64, "BOOL": bool, "NULL": bool,
    "SS": sorted, "NS": lambda ns: sorted(_number(n) for n in ns), "BS": lambda bs: sorted(_b64(b) for b in bs),
    "L": lambda items: [_normal(v) for v in items], "M": lambda m: {k: _normal(v) for k, v in m.items()},
}


def _plain_item(item: dict, key_types: dict, table: str, key_schema: list) -> str:
    """An item as the seed format's plain JSON (numbers exactly as stored, B key attributes as base64)."""
    def where() -> str:
        key = {k["AttributeName"]: item.get(k["AttributeName"]) for k in key_schema}
        return f"table {table}, item {canonical(key)}"

    parts = []
    for name, value in item.items():
        if name in key_types and "B" in value:
            parts.append(json.dumps(name) + ":" + json.dumps(_b64(value["B"])))
        else:
            parts.append(json.dumps(name) + ":" + _plain(value, name, where))
    return "{" + ",".join(parts) + "}"


def _plain(value: dict, name: str, where) -> str:
    kind, inner = next(iter(value.items()))
    if kind == "S":
        return json.dumps(inner, ensure_ascii=False)
    if kind == "N":
        return inner  # DynamoDB's number text is a JSON number; the loader reads it back as a Decimal
    if kind == "BOOL":
        return "true" if inner else "false"
    if kind == "NULL":
        return "null"
    if kind == "L":
        return "[" + ",".join(_plain(v, name, where) for v in inner) + "]"
    if kind == "M":
        return "{" + ",".join(json.dumps(k) + ":" + _plain(v, name, where) for k, v in inner.items()) + "}"
    raise BadInput(f"dynamodb: {where()}: attribute {name!r} holds a {kind} value, which the seeds format (plain "
                   "JSON) cannot hold: such a table cannot be exported yet")


def version(svc) -> str:
    from localdev.services.dynamodb.install import VERSION

    return f"DynamoDB Local {VERSION}"
