"""pymatting, imported once per environment with a word first: its kernels compile then.

pymatting declares its numba kernels with signatures and ``cache=True``, so the first
import in an environment compiles every one of them (45-56 s on 2 cores, measured in
fresh venvs), and later imports load them from numba's cache (about 1 s). A cut-out
would sit silent through that first compile. So the first time p3m imports pymatting
in an environment it says what is happening, and afterwards it notes in P3M_HOME that
this environment has its kernels; later runs import silently. ``p3m weights fetch
default`` does it at install time (:func:`prepare`).
"""

from __future__ import annotations

import hashlib
import sys
import threading
import time
from importlib import metadata
from types import ModuleType
from typing import Callable

#: Whether the first import says so (the command line's --quiet turns it off).
announce = True
NOTICE = ("p3m: preparing pymatting's kernels (the first time in an environment they compile: about a minute on "
          "2 cores) ...")


def _note_path():
    from p3m.weights.store import p3m_home

    versions = "|".join([sys.prefix, sys.version, *(metadata.version(p) for p in ("pymatting", "numba"))])
    return p3m_home() / "kernels" / f"{hashlib.sha256(versions.encode()).hexdigest()[:16]}.ready"


def import_pymatting(say: Callable[[str], None] | None = None) -> ModuleType:
    """pymatting, with ``NOTICE`` said first (default: to stderr) unless this
    environment's kernels are known to be compiled already.

    Thread-safe: workers that start at once wait for the one import, rather than take
    the half-imported module from ``sys.modules`` (seen: "partially initialized module").
    """
    with _importing:
        first = "pymatting" not in sys.modules
        note = _note_path() if first else None
        if note is not None and not note.exists() and (announce or say is not None):
            (say or (lambda line: print(line, file=sys.stderr, flush=True)))(NOTICE)
        # A plain import, even when the module is there: Python's import lock makes it wait
        # for an import under way in another thread instead of returning it half made.
        import pymatting

        if note is not None:
            _note_ready(note)
        return pymatting


#: Re-entrant: a ``say`` that imports pymatting itself must not wait on its own caller.
_importing = threading.RLock()


def _note_ready(note) -> None:
    if not note.exists():  # compiled now, or loaded: either way in numba's cache from now on
        try:
            note.parent.mkdir(parents=True, exist_ok=True)
            note.touch()
        except OSError:
            pass  # a read-only home: the notice shows again next time, nothing worse


def compile_counts(pymatting: ModuleType) -> tuple[int, int]:
    """(kernels loaded from numba's cache, kernels compiled) in this process, over
    pymatting's modules; compiled kernels are in the cache from now on."""
    hits = misses = 0
    for name, module in list(sys.modules.items()):
        if not name.startswith("pymatting.") or module is None:
            continue
        for value in vars(module).values():
            stats = getattr(value, "stats", None)
            if stats is not None and hasattr(stats, "cache_hits") and getattr(value, "__module__", "") == name:
                hits += sum(stats.cache_hits.values())
                misses += sum(stats.cache_misses.values())
    return hits, misses


def prepare(say: Callable[[str], None] = print) -> str:
    """Import pymatting now (``p3m weights fetch default``): one line on what it took."""
    start = time.perf_counter()
    pymatting = import_pymatting(say)
    hits, misses = compile_counts(pymatting)
    seconds = time.perf_counter() - start
    if misses:
        return f"compiled pymatting's {misses} kernels in {seconds:.0f} s; later runs load them from numba's cache"
    return f"pymatting's {hits} kernels are compiled already (loaded from numba's cache in {seconds:.1f} s)"
