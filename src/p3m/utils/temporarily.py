"""A process-wide setting changed for the length of a block, then put back (no torch)."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")


@contextlib.contextmanager
def temporarily(get: Callable[[], T], set_: Callable[[T], object], value: T) -> Iterator[None]:
    """``set_(value)`` inside the block; the value ``get()`` gave before is restored after it."""
    before = get()
    set_(value)
    try:
        yield
    finally:
        set_(before)
