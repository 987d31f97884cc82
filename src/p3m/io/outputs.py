"""Where a job may write: inside its output folder, never onto one of its inputs.

Every job checks its output folder before any work (:func:`output_folder`) and asks
an :class:`OutputPlan` for each path it writes, so that no input name, glob or
symlink can send an output elsewhere or replace an input.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterable, Iterator

from p3m.errors import OutputError


def output_folder(out: str | os.PathLike, what: str = "output folder") -> Path:
    """``out`` as a writable folder (created if missing), or one line saying why not."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder; the {what} must be a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot create the {what} ({exc.strerror or exc})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise OutputError(f"{out}: the {what} is not writable")
    return out


#: OUT/<this file> is locked while a job writes into OUT.
LOCK_FILE = ".p3m.lock"


@contextlib.contextmanager
def exclusive(out: Path) -> Iterator[None]:
    """One job at a time writes into an output folder: a second run into it (another
    process, or another job here) is one line instead of two runs deleting each other's
    temporary files and reports. The lock goes with the process, however it ends."""
    try:
        import fcntl
    except ImportError:  # not a POSIX system: no lock
        yield
        return
    with open(out / LOCK_FILE, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(f"{out}: another p3m run is writing into this folder; wait for it to finish, or "
                              "choose another -o") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def withdraw(paths: dict[str, Path]) -> None:
    """Remove these outputs of an earlier run (files, or folders such as a video's frames),
    so that none made without the blur stays beside private ones."""
    for path in paths.values():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def output_file(path: str | os.PathLike, what: str = "output file") -> Path:
    """A file to write (its folder created), or one line saying why it cannot be."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; the {what} must be a file name")
    output_folder(path.parent if str(path.parent) else Path("."), f"folder of the {what}")
    return path


class OutputPlan:
    """Paths under ``root`` that are checked: inside it, and not one of ``inputs``."""

    def __init__(self, root: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> None:
        self.root = Path(root)
        self._resolved_root = self.root.resolve()
        self._inputs = {Path(p).resolve() for p in inputs}

    def path(self, *parts: str | os.PathLike) -> Path:
        path = self.root.joinpath(*parts)
        resolved = path.resolve()
        if not resolved.is_relative_to(self._resolved_root):
            raise OutputError(f"{path}: would be written outside the output folder {self.root}; refused")
        if resolved in self._inputs:
            raise OutputError(f"{path}: would replace the input {resolved}; refused (choose another -o)")
        return path
