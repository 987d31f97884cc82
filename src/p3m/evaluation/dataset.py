"""Evaluating folders of predicted mattes against ground truth, in parallel.

Files are matched by stem. Missing predictions, extra files and size mismatches are
reported by name; a mismatched size is an error for that image, never silently resized.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from p3m.data.layout import images_by_stem
from p3m.errors import DatasetError, MetricInputError
from p3m.evaluation.metrics import ALL_KEYS, evaluate
from p3m.io.images import read_matte
from p3m.utils.files import atomic_path


@dataclass
class EvaluationResult:
    per_image: dict[str, dict[str, float]] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)

    @property
    def keys(self) -> list[str]:
        present = {k for row in self.per_image.values() for k in row}
        return [k for k in ALL_KEYS if k in present]

    def mean(self) -> dict[str, float]:
        return {k: float(np.mean([row[k] for row in self.per_image.values()])) for k in self.keys}

    def write_json(self, path: Path) -> None:
        data = {"mean": self.mean(), "per_image": self.per_image, "count": len(self.per_image)}
        if self.problems:
            data["problems"] = {name: reason for name, reason in self.problems}
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(data, indent=2))

    def write_csv(self, path: Path) -> None:
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["image", *self.keys])
            for stem, row in self.per_image.items():
                writer.writerow([stem, *(f"{row[k]:.6g}" for k in self.keys)])


def read_trimap(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        array = np.asarray(img)
    return array[..., 0] if array.ndim == 3 else array


def score_files(alpha: np.ndarray, gt: Path, trimap: Path | None, *, fast: bool = False) -> dict[str, float]:
    """Metrics of a predicted matte against a ground-truth mask file (and trimap file).

    A size mismatch raises, naming what differs: an image is never silently resized.
    """
    g = read_matte(gt)
    if alpha.shape != g.shape:
        raise MetricInputError(f"size mismatch: prediction {alpha.shape[1]}x{alpha.shape[0]}, "
                       f"ground truth {g.shape[1]}x{g.shape[0]}")
    t = read_trimap(trimap) if trimap is not None else None
    if t is not None and t.shape != g.shape:
        raise MetricInputError(f"size mismatch: trimap {t.shape[1]}x{t.shape[0]}, ground truth {g.shape[1]}x{g.shape[0]}")
    return evaluate(alpha, g, t, fast=fast)


def _evaluate_files(stem: str, pred: Path, gt: Path, trimap: Path | None, fast: bool) -> tuple[str, dict | str]:
    try:
        return stem, score_files(read_matte(pred), gt, trimap, fast=fast)
    except Exception as exc:
        return stem, str(exc)


def _one_thread_per_worker() -> None:
    """Worker processes each use one core: OpenCV's own threads would oversubscribe."""
    import cv2

    cv2.setNumThreads(1)


def evaluate_folders(pred_dir: Path, gt_dir: Path, trimap_dir: Path | None = None, *, workers: int = 1,
                     fast: bool = False) -> EvaluationResult:
    for folder in (pred_dir, gt_dir, trimap_dir):
        if folder is not None and not Path(folder).is_dir():
            raise DatasetError(f"{folder}: no such folder")
    preds, gts = images_by_stem(Path(pred_dir)), images_by_stem(Path(gt_dir))
    trimaps = images_by_stem(Path(trimap_dir)) if trimap_dir else {}
    result = EvaluationResult()
    for stem in sorted(set(preds) - set(gts)):
        result.problems.append((preds[stem].name, "extra prediction: no ground truth with this name"))
    jobs = []
    for stem in sorted(gts):
        if stem not in preds:
            result.problems.append((gts[stem].name, "missing prediction"))
        elif trimap_dir and stem not in trimaps:
            result.problems.append((gts[stem].name, "missing trimap"))
        else:
            jobs.append((stem, preds[stem], gts[stem], trimaps.get(stem), fast))
    if workers > 1 and len(jobs) > 1:
        # spawn, not fork: forking a process whose OpenCV/OpenMP threads are running can
        # deadlock the children.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                 initializer=_one_thread_per_worker) as pool:
            outcomes = list(pool.map(_evaluate_files, *zip(*jobs), chunksize=max(1, len(jobs) // (4 * workers))))
    else:
        outcomes = [_evaluate_files(*job) for job in jobs]
    for stem, outcome in outcomes:
        if isinstance(outcome, str):
            result.problems.append((stem, outcome))
        else:
            result.per_image[stem] = outcome
    return result


def format_table(rows: dict[str, dict[str, float]], keys: list[str]) -> str:
    """A plain-text table: one row per name, metric columns."""
    width = max([len(n) for n in rows] + [5])
    lines = [f"{'':{width}s} " + " ".join(f"{k:>8s}" for k in keys)]
    for name, values in rows.items():
        lines.append(f"{name:{width}s} " + " ".join(_fmt(k, values.get(k)) for k in keys))
    return "\n".join(lines)


def _fmt(key: str, value: float | None) -> str:
    if value is None:
        return f"{'-':>8s}"
    return f"{value:8.4f}" if key in ("MSE", "MAD", "MSE-T", "MAD-T") else f"{value:8.2f}"
