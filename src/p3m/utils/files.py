"""Atomic file writes: a killed process never leaves a half-written output behind.

The temporary file gets the mode an ordinary ``open`` would give (0666 less the
umask), not mkstemp's 0600. A temporary file left by a killed run for the same target
is removed when that target is written again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


#: read once, at import: os.umask can only be read by setting it
_MODE = 0o666 & ~_umask()


def _remove_stale_temporaries(path: Path) -> None:
    # mkstemp's random part is 8 characters: this matches this target's temporaries only
    for stale in path.parent.glob(f".{glob_escape(path.name)}.{'?' * 8}.tmp"):
        stale.unlink(missing_ok=True)


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, _MODE)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB pieces (a video need not fit in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
