"""Handing freed memory back to the operating system.

glibc keeps the heap pages of freed objects for later reuse. After a long process has built and
dropped many medium-sized arrays (a training client placing 150 partitions' feature blocks, a
batch worker after a chunk), those pages stay in its resident set although nothing uses them,
and they count against the machine as much as live data. ``malloc_trim(0)`` returns them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _libc() -> Any | None:
    """glibc, or None on a C library without ``malloc_trim`` (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def release_free_memory() -> bool:
    """Collect garbage, then return the heap's free pages to the system where glibc allows it.

    Why: a step that drops gigabytes of intermediate arrays should leave the next step that
    room in fact, not only on paper, or the process's peak is the sum of both. Returns whether
    anything could be trimmed (False where the C library has no ``malloc_trim``).
    """
    gc.collect()
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
