"""Giving freed memory back to the operating system.

A namespace's create and delete run on worker threads, and glibc's malloc gives each thread an arena of its
own; what those threads free stays in their arenas, counted in the process's memory, until malloc happens to
reuse it. A long-lived agent therefore grew with every namespace ever made although its Python heap was flat
(tracemalloc), and `malloc_trim` brought it back below its size after warm-up.
Elsewhere (macOS, musl) there is no such call, or it does nothing: those allocators return memory themselves.
"""

from __future__ import annotations

import ctypes
import functools


@functools.cache
def _malloc_trim():
    try:
        # The process's own symbols, libc's among them: find_library("c") would run ldconfig (or a compiler)
        # at the first delete of every process.
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    return trim


def give_back_freed_memory() -> bool:
    """Return the free pages of every malloc arena to the OS; False where the allocator has no such call.
    It walks the arenas' free lists only, so it can follow every delete."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
