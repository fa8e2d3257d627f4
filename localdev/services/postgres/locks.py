"""PostgreSQL advisory locks: one context manager for every lock localdev takes in the shared server.

A lock dies with its connection, so a crashed holder never leaves one behind. Keys are (space, hashtext(name)):
namespace names have a space of their own, so no internal lock can be mistaken for a namespace's (the
registry's `interrupted` check looks for namespace locks by that space).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from localdev.errors import LocalDevError

NAMESPACES = 0x10CA1DE  # one per namespace name, held for a whole create/delete/seed
INTERNAL = 0x10CA1DF  # localdev's own: the registry's creation, seed templates, spares, FerretDB's ACLs


class LockTimeout(LocalDevError):
    pass


@contextmanager
def advisory_lock(conn, name: str, *, space: int = INTERNAL, timeout: str | None = None,
                  transaction: bool = False, try_only: bool = False) -> Iterator[bool]:
    """Hold the lock on `name` for the block; yields whether it is held (False only with `try_only`).

    transaction: a transaction-scoped lock (released at the end of the caller's open transaction).
    timeout: a PostgreSQL interval ('120s'); waiting longer raises LockTimeout."""
    import psycopg

    scope = "_xact_lock" if transaction else "_lock"
    # A lock nobody holds (the usual case) is taken by the try alone: one round trip, not the four of a
    # timed wait (the timeout set, the lock, the timeout reset).
    held = conn.execute(f"SELECT pg_try_advisory{scope}(%s, hashtext(%s))", (space, name)).fetchone()[0]
    if not held and not try_only:
        if timeout:
            conn.execute(f"SET statement_timeout = '{timeout}'")
        try:
            conn.execute(f"SELECT pg_advisory{scope}(%s, hashtext(%s))", (space, name))
            held = True
        except psycopg.errors.QueryCanceled:
            raise LockTimeout(f"waited {timeout} for the lock on {name!r}") from None
        finally:
            if timeout:
                conn.execute("SET statement_timeout = 0")
    try:
        yield held
    finally:
        if held and not transaction:
            try:
                conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (space, name))
            except psycopg.OperationalError:
                pass  # the connection is gone (a restarted server), and the session's lock went with it
