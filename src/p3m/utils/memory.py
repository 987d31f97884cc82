"""Keep freed memory in the process for the next image, instead of returning it to the
system and faulting it back in page by page.

P3M-Net's CPU passes allocate feature maps of hundreds of MB per image. glibc serves
blocks that large with fresh ``mmap`` pages and unmaps them when freed, so every image
pays the kernel to zero and map the same memory again: on 2 cores, HYBRID in bf16 at
1620 x 1080 spent about a third of its time there (docs/performance.md). Telling glibc
not to use ``mmap`` for large blocks and not to trim the heap keeps that memory for
reuse, at the cost of a peak resident size about 10% higher that stays after the work.
This is what the allocators PyTorch recommends for CPU inference (jemalloc, tcmalloc)
do. Values are unchanged; only where the memory comes from.

Set ``P3M_KEEP_FREED_MEMORY=0`` to leave the allocator as it is. Other C libraries
(musl, macOS, Windows) are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_done: bool | None = None


def keep_freed_memory() -> bool:
    """Set glibc's allocator to keep freed memory (once per process); True if it is set."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if os.environ.get("P3M_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    # No mmap for large blocks, and trim the heap only past 1 GiB of free memory at its top.
    _done = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))
    return _done
