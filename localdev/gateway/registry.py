"""The gateway's view of the registry: access key -> (namespace, secret), bucket -> owner, cached.

Lookups run on a small pool of registry connections in worker threads (the event loop never blocks on
PostgreSQL); answers are cached, and a thread LISTENing on the registry's channel evicts what changed:
a namespace whose row changed (its delete starts by marking it 'deleting'), a bucket whose record changed.
While that thread has no connection (PostgreSQL restarting), entries live at most FALLBACK_TTL seconds.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from localdev.gateway import ownership

log = logging.getLogger("localdev.gateway")
FALLBACK_TTL = 5.0  # how long a cached answer may live while no notification can reach us
LISTENING_TTL = 300.0  # with notifications flowing: only a backstop
NEGATIVE_TTL = 1.0  # an unknown key is asked again after this (a namespace being created)


@dataclass(frozen=True)
class Caller:
    namespace: str
    account: str  # the access key id: the namespace's 12-digit account in the emulator
    secret: str


class Registry:
    def __init__(self, connect: Callable[[], Any], pool: Callable[[], Any]):
        """`connect()` opens a dedicated autocommit connection (for LISTEN); `pool()` the pool that serves
        lookups, asked for at the first one (the gateway starts beside PostgreSQL, not after it)."""
        self._connect = connect
        self._pool = pool
        self._keys: dict[str, tuple[Caller | None, float]] = {}
        self._owners: dict[str, tuple[str | None, float]] = {}
        self._listening = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        threading.Thread(target=self._listen, name="registry-listen", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _ttl(self) -> float:
        return LISTENING_TTL if self._listening else FALLBACK_TTL

    async def caller(self, access_key: str) -> Caller | None:
        async def fetch():
            found = await asyncio.to_thread(self._query, ownership.namespace_of_key, access_key)
            return Caller(found[0], access_key, found[1]) if found and found[1] else None

        return await self._cached(self._keys, access_key, fetch)

    async def owner(self, bucket: str) -> str | None:
        async def fetch():
            return await asyncio.to_thread(self._query, ownership.bucket_owner, bucket)

        return await self._cached(self._owners, bucket, fetch)

    async def _cached(self, cache: dict, key: str, fetch):
        now = time.monotonic()
        hit = cache.get(key)
        if hit is not None and now < hit[1]:
            return hit[0]
        value = await fetch()
        # an unknown key is asked again soon (its namespace may be being created); anything else lives until
        # a notification evicts it
        ttl = self._ttl() if value is not None or cache is self._owners else NEGATIVE_TTL
        cache[key] = (value, now + ttl)
        return value

    async def record(self, bucket: str, namespace: str) -> None:
        await asyncio.to_thread(self._query, ownership.record_bucket, bucket, namespace)
        self._owners[bucket] = (namespace, time.monotonic() + self._ttl())

    async def forget(self, bucket: str, namespace: str) -> None:
        await asyncio.to_thread(self._query, ownership.forget_bucket, bucket, namespace)
        self._owners.pop(bucket, None)

    def _query(self, fn, *args):
        with self._pool().connection() as conn:
            return fn(conn, *args)

    # -- invalidation -----------------------------------------------------------------------------
    def _evict(self, payload: str) -> None:
        kind, _, name = payload.partition(":")
        if kind == "ns":
            self._keys = {k: v for k, v in self._keys.items() if v[0] is not None and v[0].namespace != name}
            self._owners = {b: v for b, v in self._owners.items() if v[0] != name}
        elif kind == "bucket":
            self._owners.pop(name, None)

    def _clear(self) -> None:
        self._keys, self._owners = {}, {}

    def _listen(self) -> None:
        delay = 0.2
        while not self._stop.is_set():
            try:
                conn = self._connect()
                try:
                    conn.execute(f"LISTEN {ownership.CHANNEL}")
                    self._call(self._clear)  # whatever happened while we were not listening
                    self._listening = True
                    delay = 0.2
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._call(self._evict, note.payload)
                finally:
                    self._listening = False
                    conn.close()
            except Exception as exc:  # PostgreSQL restarting: cached answers age out meanwhile
                log.warning("registry notifications lost (%s); retrying in %.1fs", exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)

    def _call(self, fn, *args) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(fn, *args)
