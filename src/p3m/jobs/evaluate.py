"""Evaluating folders of predicted mattes against ground truth, in parallel.

Files are matched by stem. Missing predictions, extra files and size mismatches are
reported by name, each as a failed record.
"""

from __future__ import annotations

import csv
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from p3m.data.layout import images_by_stem
from p3m.errors import DatasetError
from p3m.evaluation.scoring import mean_metrics, metric_keys, score_files
from p3m.io.images import read_matte
from p3m.jobs.progress import Progress
from p3m.jobs.results import ItemRecord, JobResult, Status
from p3m.render import Table
from p3m.utils.files import atomic_path
from p3m.utils.temporarily import temporarily


@dataclass
class MetricRecord(ItemRecord):
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class EvaluationResult(JobResult):
    records: list[MetricRecord] = field(default_factory=list)

    @property
    def per_image(self) -> dict[str, dict[str, float]]:
        return {r.name: r.metrics for r in self.records if r.status == Status.DONE}

    @property
    def problems(self) -> list[tuple[str, str]]:
        return [(r.name, r.reason) for r in self.records if r.status != Status.DONE]

    @property
    def keys(self) -> list[str]:
        return metric_keys(self.per_image.values())

    def mean(self) -> dict[str, float]:
        return mean_metrics(self.per_image.values())

    def table(self) -> Table:
        mean = self.mean()
        return Table(["", *self.keys], [[f"mean of {len(self.per_image)}", *(mean[k] for k in self.keys)]],
                     keys=[None, *self.keys])

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"mean": self.mean(), "per_image": self.per_image, "count": len(self.per_image)}
        if self.problems:
            data["problems"] = dict(self.problems)
        return data

    def write_json(self, path: Path) -> None:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2))

    def write_csv(self, path: Path) -> None:
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["image", *self.keys])
            for stem, row in self.per_image.items():
                writer.writerow([stem, *(f"{row[k]:.6g}" for k in self.keys)])


def _evaluate_files(stem: str, pred: Path, gt: Path, trimap: Path | None, fast: bool) -> tuple[str, dict | str]:
    try:
        return stem, score_files(read_matte(pred), gt, trimap, fast=fast)
    except Exception as exc:
        return stem, str(exc)


def _opencv_threads(count: int):
    """OpenCV's own thread count inside the block (one per worker thread: no oversubscription)."""
    import cv2

    return temporarily(cv2.getNumThreads, cv2.setNumThreads, count)


def prediction_folder(folder: Path) -> Path:
    """The folder of mattes: ``folder`` itself, or its ``alpha/`` when ``folder`` is what
    ``p3m matte`` wrote. A folder whose mattes are only in subfolders is named in the error."""
    if images_by_stem(folder):
        return folder
    if images_by_stem(folder / "alpha"):
        return folder / "alpha"
    inner = sorted(str(p.relative_to(folder)) for p in folder.iterdir() if p.is_dir() and images_by_stem(p))
    hint = f"; the mattes are in {', '.join(inner)}: pass --pred {folder / inner[0]}" if inner else ""
    raise DatasetError(f"{folder}: holds no prediction images{hint}")


def evaluate_folders(pred_dir: Path, gt_dir: Path, trimap_dir: Path | None = None, *, workers: int = 1,
                     fast: bool = False, progress: Progress | None = None) -> EvaluationResult:
    start = time.perf_counter()
    for folder in (pred_dir, gt_dir, trimap_dir):
        if folder is not None and not Path(folder).is_dir():
            raise DatasetError(f"{folder}: no such folder")
    pred_dir = prediction_folder(Path(pred_dir))
    preds, gts = images_by_stem(pred_dir), images_by_stem(Path(gt_dir))
    trimaps = images_by_stem(Path(trimap_dir)) if trimap_dir else {}
    result = EvaluationResult()
    for stem in sorted(set(preds) - set(gts)):
        result.records.append(MetricRecord(preds[stem].name, Status.FAILED,
                                           "extra prediction: no ground truth with this name"))
    jobs = []
    for stem in sorted(gts):
        if stem not in preds:
            result.records.append(MetricRecord(gts[stem].name, Status.FAILED, "missing prediction"))
        elif trimap_dir and stem not in trimaps:
            result.records.append(MetricRecord(gts[stem].name, Status.FAILED, "missing trimap"))
        else:
            jobs.append((stem, preds[stem], gts[stem], trimaps.get(stem), fast))
    progress = progress or Progress()
    progress.start(len(jobs), "evaluate")

    def collect(outcomes) -> None:
        for stem, outcome in outcomes:  # as each image finishes, in order
            failed = isinstance(outcome, str)
            record = MetricRecord(stem, Status.FAILED if failed else Status.DONE, outcome if failed else "",
                                  metrics={} if failed else outcome)
            result.records.append(record)
            progress.record(record)

    if workers > 1 and len(jobs) > 1:
        # Threads, not processes: PNG decoding, OpenCV's filters and labelling and numpy's
        # array work release the GIL, and threads cost no start-up (spawned processes
        # re-import everything: 8 full-size pairs took 1.9 s with 2 processes, 1.4 s with
        # 2 threads, 2.0 s with one; docs/evaluation.md).
        with _opencv_threads(1), ThreadPoolExecutor(max_workers=workers) as pool:
            collect(pool.map(_evaluate_files, *zip(*jobs)))
    else:
        collect(_evaluate_files(*job) for job in jobs)
    progress.close()
    result.seconds = time.perf_counter() - start
    return result
