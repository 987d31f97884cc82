"""Scoring one predicted matte against its ground-truth files, and averaging scores.

A mismatched size is an error for that image, never silently resized.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from p3m.errors import MetricInputError
from p3m.evaluation.metrics import ALL_KEYS, evaluate
from p3m.io.images import open_image, read_matte


def read_trimap(path: Path) -> np.ndarray:
    with open_image(path) as img:
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
        raise MetricInputError(f"size mismatch: trimap {t.shape[1]}x{t.shape[0]}, "
                               f"ground truth {g.shape[1]}x{g.shape[0]}")
    return evaluate(alpha, g, t, fast=fast)


def metric_keys(rows) -> list[str]:
    """The metrics present in any row, in the published order."""
    present = {k for row in rows for k in row}
    return [k for k in ALL_KEYS if k in present]


def mean_metrics(rows) -> dict[str, float]:
    """The dataset figure: the mean over images of each metric (empty for no rows)."""
    rows = list(rows)
    return {k: float(np.mean([row[k] for row in rows])) for k in metric_keys(rows)}
