"""Foreground and background colours for the composition loss (``p3m prepare-fgbg``).

pymatting's multi-level foreground estimation (default) or closed-form estimation
(``cf``, as the authors did, much slower) gives F and B with alpha F + (1 - alpha) B = I.
Parallel over processes, resumable (existing outputs are skipped), atomic writes.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from p3m.data.layout import TrainLayout, images_by_stem
from p3m.errors import DatasetError, ImageError
from p3m.io.images import read_image_file, read_matte
from p3m.io.writers import write_image


def estimate_fgbg(image: np.ndarray, alpha: np.ndarray, method: str = "ml") -> tuple[np.ndarray, np.ndarray]:
    """uint8 RGB + float alpha -> uint8 foreground and background."""
    from p3m.inference.kernels import import_pymatting

    pymatting = import_pymatting()
    estimate = pymatting.estimate_foreground_ml if method == "ml" else pymatting.estimate_foreground_cf
    fg, bg = estimate(image.astype(np.float64) / 255.0, alpha.astype(np.float64), return_background=True)
    def to8(x):
        return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)
    return to8(fg), to8(bg)


def _one(job: tuple[Path, Path, Path, Path, str]) -> tuple[str, str | None]:
    image_path, mask_path, fg_path, bg_path, method = job
    try:
        image = read_image_file(image_path)
        mask = read_matte(mask_path)
        if mask.shape != image.shape[:2]:
            raise ImageError(f"matte {mask_path.name} differs in size from the image")
        fg, bg = estimate_fgbg(image, mask, method)
        write_image(fg_path, fg)
        write_image(bg_path, bg)
        return image_path.name, None
    except Exception as exc:
        return image_path.name, str(exc)


def prepare_fgbg(root: str | Path, *, images: str = "blurred", method: str = "ml", workers: int = 2,
                 overwrite: bool = False, progress=None) -> tuple[int, int, list[tuple[str, str]]]:
    """Write ROOT/train/fg and ROOT/train/bg; returns (done, skipped, failures)."""
    root = Path(root)
    layout = TrainLayout(root)
    image_dir, mask_dir = layout.image_dir(images), layout.mask_dir
    for folder in (image_dir, mask_dir):
        if not folder.is_dir():
            raise DatasetError(f"{folder}: no such folder")
    image_files, mask_files = images_by_stem(image_dir), images_by_stem(mask_dir)
    jobs, skipped = [], 0
    for stem in sorted(set(image_files) & set(mask_files)):
        suffix = image_files[stem].suffix
        fg_path, bg_path = layout.fg_dir / f"{stem}{suffix}", layout.bg_dir / f"{stem}{suffix}"
        if not overwrite and fg_path.exists() and bg_path.exists():
            skipped += 1
            continue
        jobs.append((image_files[stem], mask_files[stem], fg_path, bg_path, method))
    failures = []
    done = 0
    if workers > 1 and len(jobs) > 1:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
        results = pool.map(_one, jobs)
    else:
        pool, results = None, map(_one, jobs)
    try:
        for name, error in results:
            if error:
                failures.append((name, error))
            else:
                done += 1
            if progress:
                progress(name, error)
    finally:
        if pool:
            pool.shutdown()
    return done, skipped, failures
