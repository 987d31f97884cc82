"""The P3M-10k benchmark: run engines on the test splits, save alphas, score them.

Metrics are computed on the float alpha the engine returns (as the published test
code does), and the 8-bit PNG is saved beside for inspection and for ``p3m evaluate``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from p3m.data.layout import SPLIT_FACES, find_split
from p3m.evaluation.dataset import score_files
from p3m.evaluation.report import write_gallery, write_report
from p3m.inference.engine import MattingEngine
from p3m.io.images import read_image_file
from p3m.io.writers import write_matte
from p3m.utils.files import atomic_path
from p3m.utils.progress import BatchProgress


@dataclass
class BenchmarkModel:
    name: str
    engine: MattingEngine
    trained_on: str | None = None  # "B" (blurred faces) or "N" (normal), for PPT labels
    note: str | None = None        # shown instead of the training faces (e.g. for a baseline)

    def protocol(self, split: str) -> str | None:
        return f"{self.trained_on}:{SPLIT_FACES[split]}" if self.trained_on else None


@dataclass
class BenchmarkResult:
    # per_image[model][split][stem] -> metrics
    per_image: dict[str, dict[str, dict[str, dict[str, float]]]] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)

    def mean(self, model: str, split: str) -> dict[str, float]:
        rows = self.per_image.get(model, {}).get(split, {})
        if not rows:
            return {}
        return {k: float(np.mean([r[k] for r in rows.values()])) for k in next(iter(rows.values()))}


def run_benchmark(models: list[BenchmarkModel], data_root: Path, splits: list[str], out: Path, *,
                  limit: int | None = None, fast: bool = False) -> BenchmarkResult:
    result = BenchmarkResult()
    located = {name: find_split(data_root, name) for name in splits}
    for model in models:
        result.per_image[model.name] = {}
        for name, split in located.items():
            files = split.files()
            stems = files.paired(limit)
            for stem in files.unpaired():
                result.problems.append((f"{name}/{stem}", "image without mask or mask without image"))
            progress = BatchProgress(len(stems), desc=f"{model.name} {name}")
            rows = {}
            for stem in stems:
                try:
                    alpha = model.engine.predict([read_image_file(files.images[stem])])[0]
                    rows[stem] = score_files(alpha, files.masks[stem], files.trimaps.get(stem), fast=fast)
                    write_matte(out / model.name / name / "alpha" / f"{stem}.png", alpha)
                    progress.done(stem)
                except Exception as exc:
                    progress.failed(str(files.images[stem]), str(exc))
                    result.problems.append((f"{name}/{stem}", str(exc)))
            progress.close()
            result.per_image[model.name][name] = rows
    _write_outputs(result, models, located, out)
    return result


def _write_outputs(result: BenchmarkResult, models: list[BenchmarkModel], located, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        model.name: {
            split: {"mean": result.mean(model.name, split), "count": len(result.per_image[model.name][split]),
                    "protocol": model.protocol(split)}
            for split in located
        }
        for model in models
    }
    with atomic_path(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps({"models": summary, "per_image": result.per_image,
                                   "problems": dict(result.problems)}, indent=2))
    with atomic_path(out / "per_image.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        keys = None
        for model, splits in result.per_image.items():
            for split, rows in splits.items():
                for stem, row in rows.items():
                    if keys is None:
                        keys = list(row)
                        writer.writerow(["model", "split", "image", *keys])
                    writer.writerow([model, split, stem, *(f"{row[k]:.6g}" for k in keys)])
    write_report(out / "report.md", result, models, list(located))
    for model in models:
        write_gallery(out / f"gallery_{model.name}.png", result.per_image[model.name], located,
                      out / model.name)
