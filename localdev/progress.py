"""Progress of long namespace operations (large seeds), from the service doing the work to whoever watches.

Services call `report(namespace, message, fraction)` from any thread; the agent subscribes for the length of
one request and streams what it hears to the CLI, which draws a progress bar on a terminal.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable

_lock = threading.Lock()
_listeners: dict[str, list[Callable[[str, float | None], None]]] = {}


def report(namespace: str, message: str, fraction: float | None = None) -> None:
    with _lock:
        listeners = list(_listeners.get(namespace, ()))
    for listener in listeners:
        listener(message, fraction)


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
