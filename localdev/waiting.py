"""One way to wait for something: `poll_until(predicate, timeout, what)`, for the library and the tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from localdev.errors import LocalDevError

T = TypeVar("T")


class TimedOut(LocalDevError):
    pass


def poll_until(predicate: Callable[[], T], timeout: float, what: str, *, interval: float = 0.02,
               max_interval: float = 0.25, fail: Callable[[], str | None] | None = None) -> T:
    """Call `predicate` until it returns something truthy, and return that.

    Starts fast and backs off (a server is often ready within milliseconds, sometimes only after seconds).
    `fail`, if given, is asked between tries: a sentence it returns is raised at once (a process that
    exited will never become ready). After `timeout` seconds: TimedOut("timed out after Ns waiting for <what>").
    """
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        result = predicate()
        if result:
            return result
        if fail is not None:
            reason = fail()
            if reason:
                raise LocalDevError(reason)
        if time.monotonic() >= deadline:
            raise TimedOut(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, max_interval)
