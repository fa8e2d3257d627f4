"""What a service's seed did, kept until every service has applied its part, so that any failure can take
all of it back (`localdev seed` is all-or-nothing across services).

A service's `seed` returns an `Undo`: `commit()` keeps what was done (PostgreSQL commits its open
transaction here), `rollback()` runs the recorded steps newest first. A step's arguments (an overwritten
item's former version, the ids of inserted documents) are spooled to a temporary file, so undoing a
50k-item seed needs no memory for them.
"""

from __future__ import annotations

import pickle
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import IO, TypeVar

from localdev.errors import LocalDevError

T = TypeVar("T")


class Undo:
    def __init__(self, commit: Callable[[], None] | None = None):
        self._commit = commit
        self._steps: list[tuple[Callable, int]] = []  # (function, offset of its pickled arguments)
        self._spool: IO[bytes] | None = None
        self._done = False
        self._lock = threading.Lock()  # a seed may write from several threads
        self._held: list[Callable[[], object]] = []

    def add(self, fn: Callable, *args, **kwargs) -> Undo:
        """Record `fn(*args, **kwargs)` as a step of the rollback (arguments must pickle)."""
        with self._lock:
            if self._spool is None:
                self._spool = tempfile.TemporaryFile(prefix="localdev-undo-")
            self._spool.seek(0, 2)
            self._steps.append((fn, self._spool.tell()))
            pickle.dump((args, kwargs), self._spool, protocol=pickle.HIGHEST_PROTOCOL)
        return self

    def hold(self, cm: AbstractContextManager[T]) -> T:
        """Enter `cm` (a lease on a client the steps use) and exit it once this undo is committed or rolled
        back: the steps run after the seed returns, and their client must stay open until then."""
        value = cm.__enter__()
        self._held.append(lambda: cm.__exit__(None, None, None))
        return value

    def commit(self) -> None:
        """Keep what was done; a commit that fails leaves the rollback possible."""
        if self._done:
            return
        if self._commit is not None:
            self._commit()
        self._close()

    def rollback(self) -> None:
        """Run every step, newest first, even after one fails; then raise the first failure."""
        if self._done:
            return
        first = None
        try:
            for fn, offset in reversed(self._steps):
                assert self._spool is not None  # every step's arguments were written to it
                self._spool.seek(offset)
                args, kwargs = pickle.load(self._spool)
                try:
                    fn(*args, **kwargs)
                except Exception as exc:  # noqa: BLE001 - the other steps still run
                    first = first or exc
        finally:
            self._close()
        if first is not None:
            raise first

    def _close(self) -> None:
        self._done = True
        self._steps = []
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        held, self._held = self._held, []
        for release in reversed(held):
            release()


def roll_back(undos: list[Undo], error: BaseException) -> None:
    """After `error`, roll back `undos` newest first. If one cannot be, the namespace is not as it was:
    raise an error saying so (exit 1) instead of `error`, which may claim nothing changed."""
    failed = []
    for undo in reversed(undos):
        try:
            undo.rollback()
        except Exception as exc:  # noqa: BLE001 - roll back the others all the same
            failed.append(exc)
    if failed:
        raise LocalDevError(f"{error}; undoing the seed failed too ({failed[0]}): the namespace is partly "
                            "seeded: seed it again once the cause is fixed, or delete it") from error


@contextmanager
def undoing(commit: Callable[[], None] | None = None) -> Iterator[Undo]:
    """An Undo for one service's seed, rolled back if that seed fails before returning it."""
    undo = Undo(commit)
    try:
        yield undo
    except BaseException as exc:
        roll_back([undo], exc)
        raise
