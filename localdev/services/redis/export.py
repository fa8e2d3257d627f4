"""Redis's part of an export: seeds/redis/keys.json, the seed loader's array of {"key", "type", "value",
"ttl"?}, one key per line, keys without the namespace's prefix (an import puts the new one's in front).

Consistency: SCAN, then each key read by one script (type, value and TTL together, atomically). A key that
exists for the whole export is in it exactly once, as one moment left it; keys written or deleted while
the export runs may or may not be. A TTL is kept as the seconds left, rounded up.

Refused (BadInput), as the seeds format cannot hold them: keys or values that are not UTF-8 text, and
types other than string, hash, list, set and zset (streams, modules' types).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from localdev.errors import BadInput
from localdev.exports import Digest, Summary, canonical, json_array

FILE = "keys.json"
PAGE = 1000  # keys per SCAN, and per pipeline of reads
READ_KEY = """
local t = redis.call('TYPE', KEYS[1]).ok
local v = false
if t == 'string' then v = redis.call('GET', KEYS[1])
elseif t == 'hash' then v = redis.call('HGETALL', KEYS[1])
elseif t == 'list' then v = redis.call('LRANGE', KEYS[1], 0, -1)
elseif t == 'set' then v = redis.call('SMEMBERS', KEYS[1])
elseif t == 'zset' then v = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES') end
return {t, redis.call('PTTL', KEYS[1]), v}
"""


def dump(svc, ns, folder: Path | None) -> Summary:
    prefix = svc.key_prefix(ns).encode()
    conn = svc._on(svc._own_database(ns))
    digest = Digest()
    count = 0
    try:
        with json_array(folder / FILE if folder else None) as writer:
            read = conn.register_script(READ_KEY)
            for raw_key, (kind, pttl, raw) in _read_all(conn, read, prefix + b"*"):
                kind = kind.decode() if isinstance(kind, bytes) else kind
                if kind == "none":
                    continue  # deleted or expired since the SCAN saw it
                key = _text(raw_key[len(prefix):], raw_key)
                if not key:
                    raise BadInput(f"redis: key {raw_key!r} is the bare prefix: the seeds format needs a name after it")
                if kind not in ("string", "hash", "list", "set", "zset"):
                    raise BadInput(f"redis: key {key!r} is a {kind}; the seeds format holds strings, hashes, lists, "
                                   "sets and sorted sets only, so it cannot be exported yet")
                value = _value(kind, raw, raw_key)
                digest.add(key, kind, canonical(_normal(kind, value)), "ttl" if pttl > 0 else "")
                count += 1
                if writer:
                    entry = {"key": key, "type": kind, "value": value}
                    if pttl > 0:
                        entry["ttl"] = -(-pttl // 1000)
                    writer.add(json.dumps(entry, ensure_ascii=False))
    finally:
        conn.close()
    return Summary(counts={"keys": count}, checksum=digest.hexdigest())


def _read_all(conn, read, match: bytes):
    """(key, READ_KEY's answer) for every key SCAN finds: one pipeline of scripts per SCAN page (one round
    trip per page, not per key; each key still read atomically by its script)."""
    cursor = None
    while cursor != 0:
        cursor, keys = conn.scan(cursor or 0, match=match, count=PAGE)
        if not keys:
            continue
        pipe = conn.pipeline(transaction=False)
        for key in keys:
            read(keys=[key], client=pipe)
        yield from zip(keys, pipe.execute(), strict=True)


def _text(data: bytes, key: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"redis: key {key!r} holds bytes that are not UTF-8 text: the seeds format (JSON) cannot "
                       "hold them, so it cannot be exported yet") from None


def _value(kind: str, raw, key: bytes):
    if kind == "string":
        return _text(raw, key)
    items = [_text(x, key) for x in raw]
    if kind == "hash":
        return dict(zip(items[::2], items[1::2], strict=True))
    if kind == "zset":
        scores = {m: float(s) for m, s in zip(items[::2], items[1::2], strict=True)}
        if not all(math.isfinite(s) for s in scores.values()):
            raise BadInput(f"redis: sorted set {key!r} has an infinite score, which the seeds format (JSON) cannot "
                           "hold, so it cannot be exported yet")
        return scores
    return items


def _normal(kind: str, value):
    if kind == "set":
        return sorted(value)
    if kind == "zset":
        return sorted((m, repr(s)) for m, s in value.items())
    return value


def version(svc) -> str:
    return "Redis " + str(svc.admin().info("server").get("redis_version", ""))
