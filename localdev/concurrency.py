"""Independent steps run at once on a thread pool; a failure is raised only once every step has ended, so
none is left running behind the error (a caller's clean-up then sees everything the steps did)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")


def pool(steps: int) -> ThreadPoolExecutor:
    """A pool for up to `steps` steps at once (at most 8: the emulators and DynamoDB Local gain nothing from
    more on a small machine)."""
    return ThreadPoolExecutor(max_workers=max(1, min(8, steps)))


def started(executor: ThreadPoolExecutor, steps: Iterable[Callable[[], T]]) -> list[Future[T]]:
    return [executor.submit(step) for step in steps]


def settled(futures: list[Future[T]]) -> None:
    """Wait for every future, whatever it raised."""
    wait(futures)


def finished(futures: list[Future[T]]) -> list[T]:
    """Wait for every future; then their results, or the first failure (in submission order)."""
    settled(futures)
    return [f.result() for f in futures]


def all_at_once(executor: ThreadPoolExecutor, steps: Iterable[Callable[[], T]]) -> list[T]:
    return finished(started(executor, steps))
