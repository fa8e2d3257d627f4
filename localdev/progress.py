"""Progress of long namespace operations (large seeds), from the service doing the work to whoever watches.

Services call `report(namespace, message, fraction)` from any thread; the agent subscribes for the length of
one request and streams what it hears to the CLI, which draws a progress bar on a terminal.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable

_lock = threading.Lock()
_listeners: dict[str, list[Callable[[str, float | None], None]]] = {}


def report(namespace: str, message: str, fraction: float | None = None) -> None:
    with _lock:
        listeners = list(_listeners.get(namespace, ()))
    for listener in listeners:
        listener(message, fraction)


class Counter:
    """Reports `<label>: done/total <unit>` with its fraction, at most every `interval` seconds and at the end
    (a 50k-item seed would otherwise send 2000 reports)."""

    def __init__(self, namespace: str, label: str, total: int, unit: str = "items", interval: float = 0.2):
        self.namespace, self.label, self.total, self.unit, self.interval = namespace, label, total, unit, interval
        self.done = 0
        self._last = 0.0
        self._lock = threading.Lock()  # added to from several threads; reports stay in order

    def add(self, count: int) -> None:
        with self._lock:
            self.done += count
            now = time.monotonic()
            if now - self._last >= self.interval or self.done >= self.total:
                self._last = now
                report(self.namespace, f"{self.label}: {self.done}/{self.total} {self.unit}",
                       min(1.0, self.done / self.total) if self.total else 1.0)


@contextmanager
def listening(namespace: str, listener: Callable[[str, float | None], None]):
    with _lock:
        _listeners.setdefault(namespace, []).append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners[namespace].remove(listener)
            if not _listeners[namespace]:
                del _listeners[namespace]
