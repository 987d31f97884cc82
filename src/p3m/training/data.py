"""Training samples under the published recipe (``../shared/docs/p3m-facts.md`` section 7).

Per sample: the 8-bit matte; an online trimap from it (elliptical kernel of random
size 15..30; unknown = dilate(alpha != 0) minus erode(alpha == 255)); a crop of 512,
768 or 1024 (:func:`choose_crop`); a random horizontal flip; a bilinear resize of every
array to the training size, the uint8 alpha and trimap included; the network's
normalisation of image, foreground and background. Alpha and trimap stay 0..255.
The rules that can be made otherwise are :class:`~p3m.training.recipe.Recipe` switches.

Randomness comes from a generator seeded by (seed, epoch, index), so a resumed run
sees exactly the samples an uninterrupted one would. A sample that cannot be used is
returned as an error record (never raised inside a worker); the loop counts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, default_collate

from p3m.architectures import ArchitectureSpec, get_spec
from p3m.data.layout import TrainLayout, images_by_stem
from p3m.data.trimap import trimap_image
from p3m.errors import DatasetError, ImageError
from p3m.io.images import read_image_file, read_matte
from p3m.models.classes import TRIMAP_UNKNOWN
from p3m.training.copy_paste import CopyPaste
from p3m.training.recipe import PUBLISHED, Recipe

CROP_SIZES = (512, 768, 1024)


@dataclass(frozen=True)
class TrainSample:
    stem: str
    image: Path
    mask: Path
    fg: Path | None = None
    bg: Path | None = None
    facemask: Path | None = None  # the blurred face region (train/facemask), for P3M-CP


def find_training_samples(root: str | Path | None, images: str = "blurred", masks: str | Path | None = None,
                          *, composition: bool = True) -> tuple[list[TrainSample], list[tuple[str, str]]]:
    """Pair training images with mattes (and fg/bg) by stem; returns (samples, problems)."""
    root = Path(root) if root else None
    if images in ("blurred", "original"):
        if root is None:
            raise DatasetError(f"--images {images} needs --data ROOT (a P3M-10k folder)")
        image_dir = TrainLayout(root).image_dir(images)
    else:
        image_dir = Path(images)
    layout = TrainLayout(root) if root else None
    mask_dir = Path(masks) if masks else (layout.mask_dir if layout else None)
    if mask_dir is None:
        raise DatasetError("a folder of images needs --masks DIR (or --data ROOT with train/mask)")
    for folder in (image_dir, mask_dir):
        if not folder.is_dir():
            raise DatasetError(f"{folder}: no such folder")
    image_files, mask_files = images_by_stem(image_dir), images_by_stem(mask_dir)
    problems = [(str(image_files[s]), "image without a matte") for s in sorted(set(image_files) - set(mask_files))]
    problems += [(str(mask_files[s]), "matte without an image") for s in sorted(set(mask_files) - set(image_files))]
    fg_files = bg_files = {}
    if composition:
        fg_dir = layout.fg_dir if layout else None
        bg_dir = layout.bg_dir if layout else None
        if fg_dir is None or not fg_dir.is_dir() or not bg_dir.is_dir():
            where = f"{root}/train/fg and train/bg" if root else "train/fg and train/bg"
            raise DatasetError(f"the composition loss needs foreground and background colours ({where}); "
                               f"compute them with: p3m prepare-fgbg {root or 'ROOT'}  "
                               "(or train with --no-composition-loss)")
        fg_files, bg_files = images_by_stem(fg_dir), images_by_stem(bg_dir)
    facemasks = images_by_stem(layout.facemask_dir) if layout else {}
    samples = []
    for stem in sorted(set(image_files) & set(mask_files)):
        if composition and (stem not in fg_files or stem not in bg_files):
            problems.append((str(image_files[stem]), "no fg/bg colours (run p3m prepare-fgbg)"))
            continue
        samples.append(TrainSample(stem, image_files[stem], mask_files[stem], fg_files.get(stem), bg_files.get(stem),
                                   facemasks.get(stem)))
    if not samples:
        raise DatasetError(f"{image_dir}: no usable training samples ({len(problems)} problem(s))")
    return samples, problems


def choose_crop(rng: np.random.Generator, trimap: np.ndarray, crop_sizes=CROP_SIZES,
                recipe: Recipe = PUBLISHED) -> tuple[int, int, int]:
    """(top, left, size) of a training crop on a 0/128/255 ``trimap``.

    Published: draw one of ``crop_sizes``; keep it only if strictly smaller than the
    short side, else take the first (512). The top-left corner is drawn from rows
    [0, h - size) and columns [0, w - size): half of the time among the unknown pixels
    there (all of them if there are none), else among all. An image no larger than the
    crop is cropped to its short side at the top or left edge (the published code has
    no such case: P3M-10k images are larger).
    """
    h, w = trimap.shape
    short = min(h, w)
    if recipe.crop_size == "published":
        size = int(crop_sizes[rng.integers(len(crop_sizes))])
        if not size < short:
            size = int(crop_sizes[0])
    else:  # "fitting": among the sizes that fit
        fitting = [s for s in crop_sizes if s <= short]
        size = int(rng.choice(fitting)) if fitting else short
    size = min(size, short)
    if recipe.crop_anchor == "published":
        rows, cols = max(1, h - size), max(1, w - size)
        if rng.random() < 0.5:
            unknown = np.flatnonzero(trimap[:rows, :cols] == TRIMAP_UNKNOWN)
            if unknown.size:
                top, left = divmod(int(unknown[rng.integers(unknown.size)]), cols)
                return top, left, size
        return int(rng.integers(rows)), int(rng.integers(cols)), size
    unknown = np.flatnonzero(trimap == TRIMAP_UNKNOWN)  # "unknown-clamped": any unknown pixel, clamped
    if unknown.size and rng.random() < 0.5:
        y, x = divmod(int(unknown[rng.integers(unknown.size)]), w)
        return min(y, h - size), min(x, w - size), size
    return int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1)), size


def network_input(rgb: np.ndarray, spec: ArchitectureSpec) -> torch.Tensor:
    """uint8 H x W x 3 -> the 3 x H x W float input ``spec``'s network expects."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float().div_(255.0)
    return spec.normalise(x)[0].contiguous()


class MattingTrainDataset(Dataset):
    def __init__(self, samples: list[TrainSample], *, size: int = 512, crop_sizes=CROP_SIZES,
                 composition: bool = True, seed: int = 0, arch: str = "p3mnet-r34",
                 recipe: Recipe = PUBLISHED, copy_paste: CopyPaste | None = None) -> None:
        self.samples, self.size, self.crop_sizes = samples, size, tuple(crop_sizes)
        self.spec, self.recipe, self.copy_paste = get_spec(arch), recipe, copy_paste
        self.composition, self.seed, self.epoch = composition, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        try:
            # P3M-CP draws from its own generator: the crop, flip and trimap of a sample are
            # the same with the augmentation on or off.
            return self._load(sample, np.random.default_rng([self.seed, self.epoch, index]),
                              np.random.default_rng([self.seed, self.epoch, index, 1]))
        except Exception as exc:  # reported and counted by the loop, never a crash in a worker
            return {"error": f"{sample.image}: {exc}"}

    def _load(self, sample: TrainSample, rng: np.random.Generator, paste_rng: np.random.Generator) -> dict:
        image = read_image_file(sample.image)
        alpha = np.round(read_matte(sample.mask) * 255).astype(np.uint8)  # the published 8-bit matte
        h, w = image.shape[:2]
        if alpha.shape != (h, w):
            raise ImageError(f"matte {sample.mask.name} is {alpha.shape[1]}x{alpha.shape[0]}, image is {w}x{h}")
        layers = {"image": image}
        if self.composition:
            for key in ("fg", "bg"):
                layer = read_image_file(getattr(sample, key))
                if layer.shape[:2] != (h, w):
                    raise ImageError(f"{key} {getattr(sample, key).name} differs in size from the image")
                layers[key] = layer
        if self.copy_paste is not None and sample.facemask is not None:  # P3M-CP, before anything is cropped
            facemask = read_image_file(sample.facemask)[..., 0]
            layers["image"], fg = self.copy_paste(paste_rng, layers["image"], facemask, alpha, layers.get("fg"))
            if fg is not None:
                layers["fg"] = fg
        trimap = trimap_image(alpha, int(rng.integers(15, 31)))
        top, left, crop = choose_crop(rng, trimap, self.crop_sizes, self.recipe)
        flip = rng.random() < 0.5
        box = (slice(top, top + crop), slice(left, left + crop))

        def prepare(x: np.ndarray, interpolation: int) -> np.ndarray:
            x = x[box]
            if flip:
                x = x[:, ::-1]
            return cv2.resize(np.ascontiguousarray(x), (self.size, self.size), interpolation=interpolation)

        out = {key: network_input(prepare(layer, cv2.INTER_LINEAR), self.spec) for key, layer in layers.items()}
        # Alpha and trimap stay 0..255, resized as uint8 (published: bilinear for both).
        trimap_interpolation = cv2.INTER_LINEAR if self.recipe.trimap_resize == "linear" else cv2.INTER_NEAREST
        out["alpha"] = torch.from_numpy(prepare(alpha, cv2.INTER_LINEAR).astype(np.float32))[None]
        out["trimap"] = torch.from_numpy(prepare(trimap, trimap_interpolation).astype(np.float32))[None]
        return out


def collate_skip_bad(batch: list[dict]) -> dict:
    """Stack the good samples; bad ones become a list of messages under ``errors``."""
    good = [b for b in batch if "error" not in b]
    out = default_collate(good) if good else {}
    out["errors"] = [b["error"] for b in batch if "error" in b]
    return out


class EpochSampler(Sampler[int]):
    """A permutation seeded by (seed, epoch), sharded over ranks, resumable at an offset."""

    def __init__(self, length: int, *, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        self.length, self.seed, self.rank, self.world_size = length, seed, rank, world_size
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def _indices(self) -> list[int]:
        order = np.random.default_rng([self.seed, self.epoch, 7]).permutation(self.length).tolist()
        per_rank = -(-self.length // self.world_size)
        order += order[: per_rank * self.world_size - self.length]  # pad so every rank gets as many
        return order[self.rank::self.world_size]

    def __iter__(self):
        return iter(self._indices()[self.start:])

    def __len__(self) -> int:
        return max(0, len(self._indices()) - self.start)
