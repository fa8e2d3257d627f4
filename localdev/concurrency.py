"""Independent steps run at once on a thread pool; a failure is raised only once every step has ended, so
none is left running behind the error (a caller's clean-up then sees everything the steps did).

A pool's steps run on worker threads the whole process shares. A `concurrent.futures.ThreadPoolExecutor`
per pool started a new thread for each step of each pool (a seeded create made a dozen): every start waits
until the new thread has run, and in the agent, where threads of every service's part of a create take the
GIL in turn, that wait and the thread's making cost more than a step's own Python work. Shared workers are
started only when none is idle, and an idle one ends after IDLE_SECONDS, so a burst leaves nothing behind.
"""

from __future__ import annotations

import collections
import os
import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, wait
from typing import TypeVar

T = TypeVar("T")

IDLE_SECONDS = 20.0
_work: queue.SimpleQueue = queue.SimpleQueue()
_lock = threading.Lock()
_idle = 0  # idle workers not yet promised an item; an item put for one is taken by some worker that waits


def _forget_workers() -> None:
    """In a forked child: the parent's workers are not there."""
    global _work, _lock, _idle
    _work, _lock, _idle = queue.SimpleQueue(), threading.Lock(), 0


os.register_at_fork(after_in_child=_forget_workers)


def _dispatch(run: Callable[[], None]) -> None:
    global _idle
    with _lock:
        start = _idle == 0
        if not start:
            _idle -= 1
    _work.put(run)
    if start:
        threading.Thread(target=_worker, name="localdev-step", daemon=True).start()


def _worker() -> None:
    global _idle
    while True:
        try:
            run = _work.get(timeout=IDLE_SECONDS)
        except queue.Empty:
            with _lock:
                if _idle > 0:  # else an item was put for an idle worker meanwhile: this one takes it
                    _idle -= 1
                    return
            continue
        run()
        run = None  # an idle worker keeps nothing of its last step (its pool, its arguments, their result)
        with _lock:
            _idle += 1


class Pool:
    """Up to `limit` of its steps at once on the shared workers; the rest wait their turn, in order. As a
    context manager, its exit waits for every step submitted (as ThreadPoolExecutor's does)."""

    def __init__(self, limit: int):
        self.limit = limit
        self._lock = threading.Lock()
        self._waiting: collections.deque = collections.deque()
        self._running = 0
        self._futures: list[Future] = []

    def submit(self, fn: Callable[..., T], *args, **kwargs) -> Future[T]:
        future: Future[T] = Future()
        step = (future, fn, args, kwargs)
        with self._lock:
            self._futures.append(future)
            if self._running >= self.limit:
                self._waiting.append(step)
                return future
            self._running += 1
        _dispatch(lambda: self._run(step))
        return future

    def _run(self, step) -> None:
        """Runs `step`, then this pool's next waiting one, until none waits."""
        while True:
            future, fn, args, kwargs = step
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:  # the caller sees it through the future
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            with self._lock:
                if not self._waiting:
                    self._running -= 1
                    return
                step = self._waiting.popleft()

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc) -> None:
        while True:  # (a step may submit more to the pool it runs in)
            with self._lock:
                pending = [f for f in self._futures if not f.done()]
            if not pending:
                return
            wait(pending)


def pool(steps: int) -> Pool:
    """A pool for up to `steps` steps at once (at most 8: the emulators and DynamoDB Local gain nothing from
    more on a small machine)."""
    return Pool(max(1, min(8, steps)))


def started(executor: Pool, steps: Iterable[Callable[[], T]]) -> list[Future[T]]:
    return [executor.submit(step) for step in steps]


def settled(futures: list[Future[T]]) -> None:
    """Wait for every future, whatever it raised."""
    wait(futures)


def finished(futures: list[Future[T]]) -> list[T]:
    """Wait for every future; then their results, or the first failure (in submission order)."""
    settled(futures)
    return [f.result() for f in futures]


def all_at_once(executor: Pool, steps: Iterable[Callable[[], T]]) -> list[T]:
    return finished(started(executor, steps))
