"""DynamoDB's part of an export: seeds/dynamodb/<table>.json = {"table": <CreateTable parameters: keys,
indexes, billing, stream settings, and TimeToLiveSpecification>, "items": [<plain JSON items>]}, one item
per line, written as the scan reads them.

Consistency: a Scan is not a point-in-time read. Each item is read whole, as one write left it, but an item
written while the scan runs may or may not be in the export; there is no snapshot across items or tables.

Items are written as plain JSON where that holds them; an item with a set (SS, NS, BS) or a binary value
outside the key attributes is written in DynamoDB's own JSON instead, as {"$dynamodb": {...}}, which the seed
loader reads too.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from localdev.exports import Digest, Summary, canonical, json_array
from localdev.services.dynamodb.seeds import TYPED_ITEM

TABLE_KEYS = ("TableName", "AttributeDefinitions", "KeySchema")
PAGE = 1000  # items per Scan page


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
                # pages of PAGE items, not DynamoDB's 1 MB: two pages are held at once (the next is parsed
                # before the last is let go), and 1 MB of items is ~15 MB of Python objects
                for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True,
                                                                   PaginationConfig={"PageSize": PAGE}):
                    for item in page["Items"]:
                        digest.add("item", table, canonical(_normal(item)))
                        items += 1
                        if writer:
                            writer.add(_plain_item(item, key_types))
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


def _plain_item(item: dict, key_types: dict) -> str:
    """An item as the seed format's plain JSON (numbers exactly as stored, B key attributes as base64), or, when
    plain JSON cannot hold it (a set, a binary outside the key attributes) or would read it as the typed form
    (its one attribute named $dynamodb), as {"$dynamodb": <the item in DynamoDB's JSON>}."""
    if list(item) == [TYPED_ITEM]:
        return _typed_item(item)
    parts = []
    try:
        for name, value in item.items():
            if name in key_types and "B" in value:
                parts.append(json.dumps(name) + ":" + json.dumps(_b64(value["B"])))
            else:
                parts.append(json.dumps(name) + ":" + _plain(value))
    except _NotPlain:
        return _typed_item(item)
    return "{" + ",".join(parts) + "}"


class _NotPlain(Exception):
    pass


def _plain(value: dict) -> str:
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
        return "[" + ",".join(_plain(v) for v in inner) + "]"
    if kind == "M":
        return "{" + ",".join(json.dumps(k) + ":" + _plain(v) for k, v in inner.items()) + "}"
    raise _NotPlain(kind)  # B, SS, NS, BS


def _typed_item(item: dict) -> str:
    return '{"' + TYPED_ITEM + '":{' + ",".join(json.dumps(k) + ":" + _typed(v) for k, v in item.items()) + "}}"


def _typed(value: dict) -> str:
    """One attribute value in DynamoDB's JSON (as `aws dynamodb scan` prints it: binaries as base64)."""
    kind, inner = next(iter(value.items()))
    if kind in ("S", "N"):
        return '{"' + kind + '":' + json.dumps(inner, ensure_ascii=False) + "}"
    if kind == "B":
        return '{"B":' + json.dumps(_b64(inner)) + "}"
    if kind in ("BOOL", "NULL"):
        return '{"' + kind + '":' + ("true" if inner else "false") + "}"
    if kind in ("SS", "NS"):
        return '{"' + kind + '":' + json.dumps(list(inner), ensure_ascii=False) + "}"
    if kind == "BS":
        return '{"BS":' + json.dumps([_b64(b) for b in inner]) + "}"
    if kind == "L":
        return '{"L":[' + ",".join(_typed(v) for v in inner) + "]}"
    return '{"M":{' + ",".join(json.dumps(k) + ":" + _typed(v) for k, v in inner.items()) + "}}"  # M


def version(svc) -> str:
    from localdev.services.dynamodb.install import VERSION

    return f"DynamoDB Local {VERSION}"
