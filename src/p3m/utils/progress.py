"""A progress bar with ETA on a terminal; nothing elsewhere (the caller prints plain lines)."""

from __future__ import annotations

import sys


def progress_bar(total: int | None, desc: str, unit: str, stream=None, **options):
    """tqdm with ETA where the stream is a terminal; ``bar.disable`` is True elsewhere
    (tqdm's ``disable=None``), and the caller prints plain lines instead."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=stream or sys.stderr, dynamic_ncols=True, disable=None,
                **options)
