"""The P3M-10k benchmark: run engines on the test splits, save alphas, score them.

Metrics are computed on the float alpha the engine returns (as the published test
code does), and the 8-bit PNG is saved beside for inspection and for ``p3m evaluate``.
The returned :class:`BenchmarkResult` holds a record per image; report.md,
metrics.json, per_image.csv and the galleries are written from it.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from p3m.data.layout import SPLIT_FACES, find_split, is_synthetic
from p3m.evaluation.report import paper_table, report_markdown, write_gallery, write_report
from p3m.evaluation.scoring import mean_metrics, score_files
from p3m.inference.engine import MattingEngine
from p3m.io.images import read_image_file
from p3m.io.writers import write_matte
from p3m.jobs.evaluate import MetricRecord
from p3m.jobs.progress import Progress
from p3m.jobs.results import JobResult, Status
from p3m.render import Table
from p3m.utils.files import atomic_path


@dataclass
class BenchmarkModel:
    name: str
    engine: MattingEngine
    trained_on: str | None = None  # "B" (blurred faces) or "N" (normal), for PPT labels
    note: str | None = None        # shown instead of the training faces (e.g. for a baseline)

    def protocol(self, split: str) -> str | None:
        return f"{self.trained_on}:{SPLIT_FACES[split]}" if self.trained_on else None


@dataclass
class BenchmarkRecord(MetricRecord):
    model: str = ""
    split: str = ""
    stem: str = ""


@dataclass
class BenchmarkResult(JobResult):
    records: list[BenchmarkRecord] = field(default_factory=list)
    models: list[BenchmarkModel] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)
    synthetic: bool = False  # measured on `p3m synth` data: never shown beside published numbers

    def rows(self, model: str, split: str) -> dict[str, dict[str, float]]:
        return {r.stem: r.metrics for r in self.records
                if r.model == model and r.split == split and r.status == Status.DONE}

    @property
    def per_image(self) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
        """per_image[model][split][stem] -> metrics."""
        return {m.name: {s: self.rows(m.name, s) for s in self.splits} for m in self.models}

    @property
    def problems(self) -> list[tuple[str, str]]:
        return [(r.name, r.reason) for r in self.records if r.status != Status.DONE]

    def mean(self, model: str, split: str) -> dict[str, float]:
        return mean_metrics(self.rows(model, split).values())

    def table(self) -> Table:
        """The paper-layout table (one row per model, the published row last)."""
        return paper_table(self)

    def markdown(self) -> str:
        """report.md: the paper table, the protocols, counts and problems."""
        return report_markdown(self)

    def to_dict(self) -> dict[str, Any]:
        models = {m.name: {s: {"mean": self.mean(m.name, s), "count": len(self.rows(m.name, s)),
                               "protocol": m.protocol(s)} for s in self.splits} for m in self.models}
        return {"data": "synthetic" if self.synthetic else "P3M-10k", "models": models, "per_image": self.per_image,
                "problems": dict(self.problems)}


def run_benchmark(models: list[BenchmarkModel], data_root: Path, splits: list[str], out: Path, *,
                  limit: int | None = None, fast: bool = False, progress: Progress | None = None) -> BenchmarkResult:
    start = time.perf_counter()
    progress = progress or Progress()
    result = BenchmarkResult(models=list(models), splits=list(splits), synthetic=is_synthetic(data_root))
    located = {name: find_split(data_root, name) for name in splits}
    for model in models:
        for name, split in located.items():
            files = split.files()
            stems = files.paired(limit)
            for stem in files.unpaired():
                result.records.append(BenchmarkRecord(f"{name}/{stem}", Status.FAILED,
                                                      "image without mask or mask without image",
                                                      model=model.name, split=name, stem=stem))
            progress.start(len(stems), f"{model.name} {name}")
            for stem in stems:
                record = BenchmarkRecord(str(files.images[stem]), Status.DONE, model=model.name, split=name, stem=stem)
                try:
                    alpha = model.engine.predict([read_image_file(files.images[stem])])[0]
                    record.metrics = score_files(alpha, files.masks[stem], files.trimaps.get(stem), fast=fast)
                    path = write_matte(out / model.name / name / "alpha" / f"{stem}.png", alpha)
                    record.outputs = {"alpha": str(path)}
                except Exception as exc:
                    record.status, record.reason = Status.FAILED, str(exc)
                result.records.append(record)
                progress.record(record)
            progress.close()
    result.seconds = time.perf_counter() - start
    _write_outputs(result, located, out)
    return result


def _write_outputs(result: BenchmarkResult, located, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(result.to_dict(), indent=2))
    with atomic_path(out / "per_image.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        keys = None
        for record in result.records:
            if record.status != Status.DONE:
                continue
            if keys is None:
                keys = list(record.metrics)
                writer.writerow(["model", "split", "image", *keys])
            writer.writerow([record.model, record.split, record.stem, *(f"{record.metrics[k]:.6g}" for k in keys)])
    write_report(out / "report.md", result)
    for model in result.models:
        write_gallery(out / f"gallery_{model.name}.png", result.per_image[model.name], located, out / model.name)


def open_models(checkpoints: dict[str, str], trained_on: dict[str, str], *, default_engine: bool = False,
                **engine_options: Any) -> list[BenchmarkModel]:
    """A benchmark row per named checkpoint (run with ``engine_options``), plus the
    default engine as a baseline row when asked."""
    from p3m.inference.factory import open_engine

    models = [BenchmarkModel(name, open_engine(path, **engine_options), trained_on.get(name))
              for name, path in checkpoints.items()]
    if default_engine:
        models.append(BenchmarkModel("default-engine", open_engine("default"), None,
                                     note="baseline, not trained on P3M-10k"))
    return models
