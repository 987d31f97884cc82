"""Expanding command-line inputs (files, folders, globs) into images with relative names.

Each image keeps its path relative to the folder or glob base it was found under, so
outputs can mirror the input tree (``photos/2024/a.jpg`` -> ``OUT/alpha/2024/a.png``).
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
#: Taken as videos (by jobs that handle video) when walking folders or naming files.
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi"})


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class InputItem:
    path: Path
    relative: Path  # relative path including the file name

    @property
    def key(self) -> Path:
        """Relative path without the suffix: what outputs are named after."""
        return self.relative.with_suffix("")


def _is_input_name(path: Path, videos: bool) -> bool:
    if path.name.startswith("."):
        return False
    return path.suffix.lower() in IMAGE_SUFFIXES or (videos and is_video(path))


def _glob_base(pattern: str) -> Path:
    parts = Path(pattern).parts
    base = []
    for part in parts:
        if glob.has_magic(part):
            break
        base.append(part)
    return Path(*base) if base else Path(".")


def _safe_relative(relative: Path, path: Path) -> Path:
    """A relative name that stays below the output folder: '..' steps are resolved,
    and a name that would still climb out keeps only the file name."""
    normal = Path(os.path.normpath(relative))
    if normal.is_absolute() or normal.parts[:1] == ("..",):
        return Path(path.name)
    return normal


def _under(path: Path, folder: Path | None) -> bool:
    return folder is not None and path.resolve().is_relative_to(folder)


def _through(match: Path, base: Path, folder: Path | None) -> bool:
    """A glob match whose wildcards were matched inside ``folder`` (the output folder):
    ``a/*/../../x.png`` would otherwise match more once a run has made ``a/alpha``."""
    if folder is None:
        return False
    parts = match.parts
    return any(Path(*parts[:i]).resolve().is_relative_to(folder) for i in range(len(base.parts) + 1, len(parts)))


def _glob(spec: str) -> list[Path]:
    """Files matching ``spec``; a ``**`` never follows symlinked folders (no loops)."""
    if "**" not in spec:
        return [Path(m) for m in sorted(glob.glob(spec)) if Path(m).is_file()]
    base = _glob_base(spec)
    rest = Path(spec).relative_to(base) if base != Path(".") else Path(spec)
    return sorted(p for p in base.glob(str(rest)) if p.is_file())


def collect_images(inputs: list[str], *, exclude: str | os.PathLike | None = None, videos: bool = False,
                   ) -> tuple[list[InputItem], list[tuple[str, str]]]:
    """Return (images, problems); a problem is (input as given, reason).

    With ``videos``, folders also give their video files (a file named directly is
    always taken, whatever it holds).

    ``exclude`` (the output folder) and everything in it are never inputs: a folder
    that holds it is walked around it, and an input inside it is a problem.
    """
    excluded = Path(exclude).resolve() if exclude is not None else None
    items: list[InputItem] = []
    problems: list[tuple[str, str]] = []
    for spec in inputs:
        path = Path(spec)
        if path.exists() and _under(path, excluded):
            problems.append((spec, f"is inside the output folder {exclude}; outputs are never read back as inputs"))
        elif path.is_dir():
            found = [InputItem(f, f.relative_to(path)) for f in sorted(path.rglob("*"))
                     if f.is_file() and _is_input_name(f, videos) and not _under(f, excluded)]
            if not found:
                problems.append((spec, "folder holds no images"))
            items += found
        elif path.is_file():
            items.append(InputItem(path, Path(path.name)))
        elif glob.has_magic(spec):
            base = _glob_base(spec)
            matches = [m for m in _glob(spec) if not _under(m, excluded) and not _through(m, base, excluded)]
            if not matches:
                problems.append((spec, "no files match"))
            items += [InputItem(m, _safe_relative(Path(os.path.relpath(m, base)), m)) for m in matches]
        else:
            problems.append((spec, "no such file or directory"))

    unique: list[InputItem] = []
    seen_files: set[Path] = set()
    owner_of_key: dict[Path, Path] = {}
    for item in items:
        resolved = item.path.resolve()
        if resolved in seen_files:
            continue
        seen_files.add(resolved)
        if item.key in owner_of_key:
            problems.append((str(item.path), f"output name {item.key} is already taken by {owner_of_key[item.key]}"))
            continue
        owner_of_key[item.key] = item.path
        unique.append(item)
    return unique, problems
