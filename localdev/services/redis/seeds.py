"""Redis seeds: seeds/redis/*.json, each an array of keys::

    [{"key": "greeting", "type": "string", "value": "hello", "ttl": 3600},
     {"key": "user:1", "type": "hash", "value": {"name": "Ada", "plan": "pro"}},
     {"key": "jobs", "type": "list", "value": ["a", "b"]},
     {"key": "tags", "type": "set", "value": ["x", "y"]},
     {"key": "board", "type": "zset", "value": {"ada": 10, "bob": 7.5}}]

Keys are written under the namespace's prefix (REDIS_KEY_PREFIX): "greeting" becomes "<name>:greeting".
`ttl` (seconds) is optional. Every file is checked completely before anything is written; a seed replaces
a key of the same name. Files are streamed twice and never held whole: `load` checks every key, keeping only
the names (no key twice), and `apply` reads them again, writing batches of BATCH keys.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from localdev.batches import batches
from localdev.errors import BadInput, LocalDevError
from localdev.jsonstream import iter_array
from localdev.progress import Counter

TYPES = ("string", "hash", "list", "set", "zset")
FIELDS = {"key", "type", "value", "ttl"}
NOT_KEYS = 'expected a JSON array of keys, e.g. [{"key": "greeting", "type": "string", "value": "hello"}]'


@dataclass(frozen=True)
class Key:
    key: str
    type: str
    value: object  # str | dict[str, str] | list[str] | dict[str, float]
    ttl: int | None
    where: str  # file:line, for messages


BATCH = 1000  # keys per MULTI/EXEC: bounded memory in the agent and in the server's queued transaction


@dataclass
class RedisSeeds:
    files: list[Path]
    count: int

    def keys(self) -> Iterator[Key]:
        """Every key, parsed again from the files `load` checked, in file order."""
        for path in self.files:
            for line, entry in iter_array(path, not_array=NOT_KEYS):
                yield parse(entry, f"{path}:{line}")


def load(folder: Path) -> RedisSeeds:
    files: list[Path] = []
    seen: set[str] = set()
    count = 0
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.suffix != ".json" or not path.is_file():
            raise BadInput(f"{path}: redis seeds are .json files, each an array of keys")
        files.append(path)
        for line, entry in iter_array(path, not_array=NOT_KEYS):
            key = parse(entry, f"{path}:{line}")
            if key.key in seen:
                first = next(k.where for k in RedisSeeds(files, 0).keys() if k.key == key.key)
                raise BadInput(f"{key.where}: key {key.key!r} is seeded already at {first}")
            seen.add(key.key)
            count += 1
    return RedisSeeds(files, count)


def parse(entry, where: str) -> Key:
    """One entry, checked completely; BadInput `file:line: what is wrong`."""
    if not isinstance(entry, dict):
        raise BadInput(f"{where}: {NOT_KEYS}")
    unknown = sorted(set(entry) - FIELDS)
    if unknown:
        raise BadInput(f"{where}: unknown field {unknown[0]!r}; a key has \"key\", \"type\", \"value\" "
                       "and an optional \"ttl\"")
    for required in ("key", "type", "value"):
        if required not in entry:
            raise BadInput(f"{where}: missing \"{required}\"")
    key, kind, value = entry["key"], entry["type"], entry["value"]
    if not isinstance(key, str) or not key:
        raise BadInput(f"{where}: \"key\" must be a non-empty string")
    if kind not in TYPES:
        raise BadInput(f"{where}: key {key!r}: \"type\" must be one of {', '.join(TYPES)}, not {kind!r}")
    value = _value(kind, value, f"{where}: key {key!r}")
    ttl = entry.get("ttl")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0):
        raise BadInput(f"{where}: key {key!r}: \"ttl\" must be a positive whole number of seconds, not {ttl!r}")
    return Key(key, kind, value, ttl, where)


def _strings(items, what: str) -> None:
    for item in items:
        if not isinstance(item, str):
            raise BadInput(f"{what}: every element must be a string, not {item!r} (write numbers as strings: \"42\")")


def _value(kind: str, value, what: str):
    if kind == "string":
        if not isinstance(value, str):
            raise BadInput(f"{what}: a string's \"value\" must be a JSON string, not {value!r} "
                           "(write numbers as \"42\")")
        return value
    if kind == "hash":
        if not isinstance(value, dict) or not value:
            raise BadInput(f"{what}: a hash's \"value\" must be a non-empty object of field: string")
        for field, item in value.items():
            if not isinstance(item, str):
                raise BadInput(f"{what}: hash field {field!r} must be a string, not {item!r} (write numbers as \"42\")")
        return dict(value)
    if kind in ("list", "set"):
        if not isinstance(value, list) or not value:
            raise BadInput(f"{what}: a {kind}'s \"value\" must be a non-empty array of strings "
                           f"(Redis has no empty {kind}s)")
        _strings(value, f"{what} ({kind})")
        if kind == "set":
            seen = set()
            for member in value:
                if member in seen:  # Redis would keep one: the seed would not read back as written
                    raise BadInput(f"{what}: set member {member!r} appears twice")
                seen.add(member)
        return list(value)
    # zset
    if not isinstance(value, dict) or not value:
        raise BadInput(f"{what}: a zset's \"value\" must be a non-empty object of member: score")
    for member, score in value.items():
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise BadInput(f"{what}: zset member {member!r} needs a finite number as its score, not {score!r}")
    return {m: float(s) for m, s in value.items()}


def apply(client, prefix: str, seeds: RedisSeeds, undo, put_back, namespace: str) -> None:
    """Write every key as the namespace's own user (so its ACL decides what may be written), in batches of
    BATCH keys, each one MULTI/EXEC. With `undo` (a live namespace): first each batch's keys are dumped and
    `undo` told how to put each back (`put_back` runs as the cluster's admin: RESTORE is refused to
    namespaces), and WATCH makes a concurrent write to one of a batch's keys fail the seed instead of being
    overwritten unseen; a failure takes back the batches before it too. Without (a namespace being made,
    whose credentials nobody has yet, and which a failed create drops whole): only the writes."""
    import redis

    progress = Counter(namespace, "redis", "keys", seeds.count, "keys")
    try:
        for batch in batches(seeds.keys(), BATCH):
            _write_batch(client, [(k, prefix + k.key) for k in batch], undo, put_back)
            progress.add(len(batch))
    except redis.WatchError:
        raise LocalDevError("seeding redis failed: another client wrote one of the seeded keys meanwhile; "
                            "nothing was written: seed again") from None
    except redis.RedisError as exc:
        raise LocalDevError(f"seeding redis failed: {exc}") from None


def _write_batch(client, batch: list[tuple[Key, str]], undo, put_back) -> None:
    queued: list[str] = []  # the key each queued command writes, to name the one that failed
    with client.pipeline(transaction=True) as tx:
        if undo is not None:
            tx.watch(*(name for _, name in batch))
            for _, name in batch:  # run at once while watching
                undo.add(put_back, name, tx.dump(name), tx.pttl(name))
            tx.multi()
        for k, name in batch:
            tx.delete(name)
            WRITE[k.type](tx, name, k.value)
            queued += [name, name]
            if k.ttl:
                tx.expire(name, k.ttl)
                queued.append(name)
        results = tx.execute(raise_on_error=False)
    for result, name in zip(results, queued, strict=True):
        if isinstance(result, Exception):  # EXEC runs the rest anyway: the caller's rollback undoes them
            raise LocalDevError(f"seeding redis failed at key {name!r}: {result}")


WRITE = {
    "string": lambda tx, name, value: tx.set(name, value),
    "hash": lambda tx, name, value: tx.hset(name, mapping=value),
    "list": lambda tx, name, value: tx.rpush(name, *value),
    "set": lambda tx, name, value: tx.sadd(name, *value),
    "zset": lambda tx, name, value: tx.zadd(name, value),
}
