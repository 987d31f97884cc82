"""Where things live in a P3M-10k copy.

```
ROOT/train/{blurred_image,mask,fg,bg,facemask}/
ROOT/validation/P3M-500-P/{blurred_image,mask,trimap,facemask}/
ROOT/validation/P3M-500-NP/{original_image,mask,trimap}/
```
Some copies put the two test splits directly under ROOT; both are accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from p3m.errors import DatasetError
from p3m.io.discovery import IMAGE_SUFFIXES

SPLITS = {"P3M-500-P": "blurred_image", "P3M-500-NP": "original_image"}
#: Written by ``p3m synth`` at the root of a synthetic dataset, so that no report
#: mistakes its numbers for P3M-10k's.
SYNTHETIC_MARKER = "p3m-synthetic.json"
#: The PPT protocol letter of each test split: blurred (B) or normal (N) faces.
SPLIT_FACES = {"P3M-500-P": "B", "P3M-500-NP": "N"}


@dataclass(frozen=True)
class TrainLayout:
    """The training folders of a P3M-10k copy: ROOT/train/<kind>/, one file per stem.

    ``image_dir("blurred")`` holds the face-blurred images the PPT setting trains on,
    ``image_dir("original")`` the normal ones; ``fg``/``bg`` are the colours the
    composition loss needs (``p3m prepare-fgbg``).
    """

    root: Path

    @property
    def train(self) -> Path:
        return Path(self.root) / "train"

    def image_dir(self, faces: str) -> Path:
        """``faces``: "blurred" or "original"."""
        return self.train / f"{faces}_image"

    @property
    def mask_dir(self) -> Path:
        return self.train / "mask"

    @property
    def fg_dir(self) -> Path:
        return self.train / "fg"

    @property
    def bg_dir(self) -> Path:
        return self.train / "bg"

    @property
    def facemask_dir(self) -> Path:
        return self.train / "facemask"


@dataclass(frozen=True)
class TestSplit:
    name: str
    root: Path

    @property
    def image_dir(self) -> Path:
        return self.root / SPLITS[self.name]

    @property
    def mask_dir(self) -> Path:
        return self.root / "mask"

    @property
    def trimap_dir(self) -> Path:
        return self.root / "trimap"

    @property
    def facemask_dir(self) -> Path:
        return self.root / "facemask"

    def files(self) -> "SplitFiles":
        return SplitFiles(images_by_stem(self.image_dir), images_by_stem(self.mask_dir),
                          images_by_stem(self.trimap_dir))


@dataclass(frozen=True)
class SplitFiles:
    """A split's images, masks and trimaps, each keyed by stem."""

    images: dict[str, Path]
    masks: dict[str, Path]
    trimaps: dict[str, Path]

    def paired(self, limit: int | None = None) -> list[str]:
        """Stems with both an image and a mask, sorted; the first ``limit`` of them."""
        return sorted(set(self.images) & set(self.masks))[:limit]

    def unpaired(self) -> list[str]:
        """Stems with an image but no mask, or a mask but no image."""
        return sorted(set(self.images) ^ set(self.masks))


def find_split(root: str | Path, name: str) -> TestSplit:
    """Locate a test split under ``root/validation/`` or ``root/``."""
    if name not in SPLITS:
        raise DatasetError(f"unknown split {name!r}; choose from {', '.join(SPLITS)}")
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset folder")
    for candidate in (root / "validation" / name, root / name):
        if candidate.is_dir():
            split = TestSplit(name, candidate)
            for folder in (split.image_dir, split.mask_dir):
                if not folder.is_dir():
                    raise DatasetError(f"{folder}: missing (expected in a {name} split)")
            return split
    raise DatasetError(f"{root}: no {name} split (looked in {root / 'validation' / name} and {root / name})")


def is_synthetic(root: str | Path) -> bool:
    """Whether ``root`` was written by ``p3m synth`` (not the real P3M-10k)."""
    return (Path(root) / SYNTHETIC_MARKER).is_file()


def images_by_stem(folder: Path) -> dict[str, Path]:
    """Image files of a folder (not recursive), keyed by stem."""
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}
