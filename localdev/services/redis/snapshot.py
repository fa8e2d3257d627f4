"""Redis snapshots: a logical database of the snapshot's own, filled with COPY.

`COPY key newkey DB n` copies a key (value and TTL) into another database under a new name, inside the server:
a namespace's keys `<name>:<rest>` become `localdev-snap:<id>:<rest>` in the snapshot's database, and come back
as `<new name>:<rest>` in the new namespace's own database. (MOVE would take them from the source, and
DUMP/RESTORE sends every value through localdev.) The snapshot's database is allocated like a namespace's and
holds a marker key from the start, so it is never handed to a namespace, even when the snapshot is empty.
Keys the namespace's clients wrote on database 0, ignoring the database in REDIS_URL, are not copied.
"""

from __future__ import annotations

BATCH = 500
FIND = """for i = 1, tonumber(ARGV[2]) - 1 do
  redis.call('SELECT', i)
  if redis.call('EXISTS', ARGV[1]) == 1 then return i end
end
return -1"""


def marker(sid: str) -> str:
    return f"localdev-snap:{sid}"


class KeyCopier:
    copies_seeds = False  # a COPY costs what the seed's SET does

    def __init__(self, svc):
        self.svc = svc

    def take(self, ns, sid: str, idle: bool) -> dict:
        with self.svc.ctx.state.lock("redis-databases"):
            db = self.svc._free_database(set(self.svc._acl_users().values()))
            conn = self.svc._on(db)
            try:
                conn.hset(marker(sid), ".", ns.name)
            finally:
                conn.close()
        ttls = _copy(self.svc._on(self.svc._own_database(ns)), self.svc.key_prefix(ns), marker(sid) + ":", db)
        # The copies keep no TTL (a snapshot must not lose keys as time passes): the remaining time of each is
        # kept in the marker and given again to the key a create or reset puts back.
        conn = self.svc._on(db)
        try:
            pipe = conn.pipeline(transaction=False)
            for rest, pttl in ttls.items():
                pipe.persist(marker(sid).encode() + b":" + rest)
                pipe.hset(marker(sid), b"t:" + rest, pttl)
            pipe.execute()
        finally:
            conn.close()
        return {"db": db, "keys": len(ttls)}

    def create(self, ns, sid: str, part: dict) -> dict[str, str]:
        env = self.svc.create_namespace(ns)
        self._fill(ns, sid, part)
        return env

    def _fill(self, ns, sid: str, part: dict) -> None:
        store = self.svc._on(part["db"])
        try:
            kept = {k[2:]: int(v) for k, v in store.hgetall(marker(sid)).items() if k.startswith(b"t:")}
        finally:
            store.close()
        db, prefix = self.svc._own_database(ns), self.svc.key_prefix(ns)
        _copy(self.svc._on(part["db"]), marker(sid) + ":", prefix, db)
        conn = self.svc._on(db)
        try:
            pipe = conn.pipeline(transaction=False)
            for rest, pttl in kept.items():
                pipe.pexpire(prefix.encode() + rest, pttl)
            pipe.execute()
        finally:
            conn.close()

    def reset(self, ns, sid: str | None, part: dict | None) -> None:
        self.svc._unlink(self.svc._own_database(ns), self.svc.key_prefix(ns))
        if part is not None and sid is not None:
            self._fill(ns, sid, part)

    def drop(self, sid: str, part: dict | None) -> None:
        db = part["db"] if part else self.svc.admin().eval(FIND, 0, marker(sid), int(self.svc.option("databases")))
        if db is None or int(db) < 1:
            return
        self.svc._unlink(int(db), marker(sid) + ":")
        conn = self.svc._on(int(db))
        try:
            conn.delete(marker(sid))
        finally:
            conn.close()


def _copy(conn, prefix: str, into_prefix: str, into_db: int) -> dict[bytes, int]:
    """COPY every key under `prefix` of `conn`'s database to `into_prefix` + the rest, in database `into_db`;
    returns {rest: remaining TTL in ms} of the keys copied that had one."""
    ttls: dict[bytes, int] = {}
    try:
        pipe = conn.pipeline(transaction=False)
        batch: list[bytes] = []

        def flush() -> None:
            answers = pipe.execute()
            for rest, pttl, copied in zip(batch, answers[0::2], answers[1::2], strict=True):
                if copied and pttl > 0:
                    ttls[rest] = pttl
            batch.clear()

        for key in conn.scan_iter(match=f"{prefix}*", count=1000):
            rest = key[len(prefix):]
            pipe.pttl(key)
            pipe.execute_command("COPY", key, into_prefix.encode() + rest, "DB", into_db, "REPLACE")
            batch.append(rest)
            if len(batch) == BATCH:
                flush()
        if batch:
            flush()
    finally:
        conn.close()
    return ttls
