"""runtime.memory: freed heap pages go back to the system (glibc's ``malloc_trim``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from runtime.memory import _libc

SCRIPT = textwrap.dedent("""
    import os
    import numpy as np
    from runtime.memory import release_free_memory

    def rss():
        return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    # 2,000 heap arrays of 64 KiB (below the mmap threshold), each followed by a small live one,
    # so freeing them leaves holes glibc keeps instead of a free top it would trim by itself
    big, keep = [], []
    for _ in range(2000):
        big.append(np.ones(64 * 1024 // 8))
        keep.append(np.ones(4))
    big.clear()
    held = rss()
    trimmed = release_free_memory()
    print(held, rss(), trimmed)
""")


@pytest.mark.skipif(_libc() is None or not sys.platform.startswith("linux"), reason="needs glibc's malloc_trim")
def test_freed_heap_pages_are_returned_to_the_system() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True).stdout.split()
    held, after, trimmed = int(out[0]), int(out[1]), out[2]
    assert trimmed == "True"
    assert held - after > 100 * 2**20, (held, after)  # the 125 MiB of freed arrays, not kept by the heap
