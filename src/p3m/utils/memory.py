"""What glibc's allocator does with freed image-sized memory: one policy per process.

- **Keep it** (:func:`keep_freed_memory`; a CPU network engine asks for it when it
  starts). P3M-Net's CPU passes allocate feature maps of hundreds of MB per image.
  glibc serves blocks that large with fresh ``mmap`` pages and unmaps them when freed,
  so every image pays the kernel to zero and map the same memory again: on 2 cores,
  HYBRID in bf16 at 1620 x 1080 spent about a third of its time there
  (docs/performance.md). Not using ``mmap`` for large blocks and trimming the heap only
  past 1 GiB keeps that memory for the next image, as the allocators PyTorch
  recommends for CPU inference (jemalloc, tcmalloc) keep it cached. The cost: a peak
  resident size 5-30% higher (three runs), held after the work. Values are unchanged.
  ``P3M_KEEP_FREED_MEMORY=0`` refuses it.
- **Give it back** (:func:`return_freed_memory`; ``p3m serve`` asks for it before it
  opens its engine). Every block over 1 MiB is mapped and returned when freed, so a
  long-running service's memory stays flat between requests (docs/serve.md).

The first policy asked for in a process is the one it keeps; a later request for the
other is refused (returns False). It changes the whole process's allocator, so it is
said in docs/inference.md for API users. Other C libraries (musl, macOS, Windows) are
left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4
_policy: str | None = None


def keep_freed_memory() -> bool:
    """Keep freed memory for reuse (once per process); True if that is the policy in force."""
    refused = os.environ.get("P3M_KEEP_FREED_MEMORY", "1") == "0"
    return _set("keep", () if refused else ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 1 << 30)))


def return_freed_memory() -> bool:
    """Give every freed block over 1 MiB back to the system; True if that is the policy in force."""
    return _set("return", ((_M_MMAP_THRESHOLD, 1 << 20),))


def _set(policy: str, settings: tuple[tuple[int, int], ...]) -> bool:
    global _policy
    if _policy is None:  # the first request decides; no settings (refused) leaves glibc as it is
        _policy = policy if settings and _apply(settings) else "unchanged"
    return _policy == policy


def _apply(settings: tuple[tuple[int, int], ...]) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    return all(mallopt(option, value) == 1 for option, value in settings)
