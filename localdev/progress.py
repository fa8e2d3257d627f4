"""Progress of long namespace operations (large seeds), from the service doing the work to whoever watches.

Services call `report(namespace, service, message, fraction)` from any thread; the agent subscribes for the
length of one request and streams what it hears to the CLI, which draws a progress bar per service on a
terminal. The service travels as data; the message is text for a person.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

_lock = threading.Lock()
Listener = Callable[[str, str, "float | None"], None]  # (service, message, fraction)
_listeners: dict[str, list[Listener]] = {}


def report(namespace: str, service: str, message: str, fraction: float | None = None) -> None:
    with _lock:
        listeners = list(_listeners.get(namespace, ()))
    for listener in listeners:
        listener(service, message, fraction)


class Counter:
    """Reports `<service> <label>: done/total <unit>` with its fraction, at most every `interval` seconds and at
    the end (a 50k-item seed would otherwise send 2000 reports)."""

    def __init__(self, namespace: str, service: str, label: str, total: int, unit: str = "items",
                 interval: float = 0.2):
        self.namespace, self.service, self.total, self.unit, self.interval = namespace, service, total, unit, interval
        self.label = f"{service} {label}"
        self.done = 0
        self._last = 0.0
        self._lock = threading.Lock()  # added to from several threads; reports stay in order

    def add(self, count: int) -> None:
        with self._lock:
            self.done += count
            now = time.monotonic()
            if now - self._last >= self.interval or self.done >= self.total:
                self._last = now
                report(self.namespace, self.service, f"{self.label}: {self.done}/{self.total} {self.unit}",
                       min(1.0, self.done / self.total) if self.total else 1.0)


@contextmanager
def listening(namespace: str, listener: Listener):
    with _lock:
        _listeners.setdefault(namespace, []).append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners[namespace].remove(listener)
            if not _listeners[namespace]:
                del _listeners[namespace]
