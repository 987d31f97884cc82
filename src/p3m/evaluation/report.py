"""Benchmark reports a person reads: a markdown table in the paper's layout, and a
gallery of the worst images (input, ground truth, prediction, error map)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from p3m.data.layout import SPLIT_FACES, images_by_stem
from p3m.io.images import read_image_file
from p3m.io.writers import write_image
from p3m.render import Table
from p3m.utils.files import atomic_path

#: The columns of the paper's table, per test split.
PAPER_KEYS = ("SAD", "MSE", "MAD", "SAD-T", "GRAD", "CONN")
#: Published P3M-Net (ResNet-34), trained on blurred images (B), RESIZE strategy.
PUBLISHED = {
    "P3M-500-P": {"SAD": 8.73, "MSE": 0.0026, "MAD": 0.0051, "SAD-T": 6.89, "GRAD": 8.22, "CONN": 13.88},
    "P3M-500-NP": {"SAD": 11.23, "MSE": 0.0035, "MAD": 0.0065, "SAD-T": 7.65, "GRAD": 10.35, "CONN": 12.51},
}


def paper_table(result) -> Table:
    """One row per model of a :class:`~p3m.jobs.benchmark.BenchmarkResult`, in the paper's
    columns per split, and the published P3M-Net row last, unless the data is
    synthetic: numbers from synthetic portraits are never set beside published ones.

    Each split's columns carry its PPT protocol when all models share it; otherwise
    each row says its own protocols.
    """
    models, splits = result.models, result.splits
    shared = {}
    for split in splits:
        protocols = {m.protocol(split) for m in models}
        shared[split] = protocols.pop() if len(protocols) == 1 else None
    per_row = not all(shared.values())
    columns = ["Model", "Trained on"] + (["Protocols"] if per_row else [])
    keys: list[str | None] = [None] * len(columns)
    for split in splits:
        label = f"{split} ({shared[split]})" if shared[split] else split
        columns += [f"{label} {k}" if i == 0 else k for i, k in enumerate(PAPER_KEYS)]
        keys += list(PAPER_KEYS)
    rows = [(m.name, m.trained_on or "?", {s: result.mean(m.name, s) for s in splits}, m.note) for m in models]
    if not result.synthetic:
        rows.append(("P3M-Net (published)", "B", {s: PUBLISHED.get(s, {}) for s in splits}, None))
    table = Table(columns, keys=keys)
    for name, trained, means, note in rows:
        cells = [name, note or {"B": "blurred", "N": "normal"}.get(trained, "?")]
        if per_row:
            cells.append("–" if note else " / ".join(f"{trained}:{SPLIT_FACES[s]}" if trained != "?" else "?"
                                                     for s in splits))
        for split in splits:
            cells += [means[split].get(k) for k in PAPER_KEYS]
        table.rows.append(cells)
    return table


def report_markdown(result) -> str:
    """report.md: the paper table, the protocols, the counts and the problems."""
    models, splits = result.models, result.splits
    caption = ("Mean over the images of each split; SAD, SAD-T and CONN are divided by 1000 and GRAD by 10, "
               "as in the published evaluation.")
    if result.synthetic:
        lines = ["# Benchmark on a synthetic dataset (p3m synth), not P3M-10k", "", caption + " These are "
                 "procedural portraits: the numbers show that a pipeline runs and learns, and are not comparable "
                 "with published P3M-500 results, which are therefore not shown.", ""]
    else:
        lines = ["# P3M-10k benchmark", "", caption + " The last row is the published P3M-Net (ResNet-34), "
                 "trained on blurred images, RESIZE, for comparison.", ""]
    lines.append(paper_table(result).to_markdown())
    lines += ["", "## Protocols (train:test, B = blurred faces, N = normal)", ""]
    for m in models:
        if m.note:
            lines.append(f"- {m.name}: {m.note}")
            continue
        labels = [f"{s}: {m.protocol(s) or 'unknown (pass --trained-on)'}" for s in splits]
        lines.append(f"- {m.name}: " + "; ".join(labels))
    lines += ["", "## Images per split", ""]
    for m in models:
        lines.append(f"- {m.name}: " + ", ".join(f"{s} {len(result.rows(m.name, s))}" for s in splits))
    if result.problems:
        lines += ["", "## Problems", ""] + [f"- {name}: {reason}" for name, reason in result.problems]
    return "\n".join(lines) + "\n"


def write_report(path: Path, result) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(report_markdown(result))


def _fit(image: np.ndarray, height: int) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.resize(image, (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA)


def write_gallery(path: Path, per_split: dict, located: dict, alpha_root: Path, *, worst: int = 6,
                  height: int = 192) -> None:
    """Rows of input | ground truth | prediction | error map for the worst images by SAD."""
    scored = [(row["SAD"], split, stem) for split, rows in per_split.items() for stem, row in rows.items()]
    scored.sort(reverse=True)
    rows = []
    for _, split, stem in scored[:worst]:
        located_split = located[split]
        image = read_image_file(images_by_stem(located_split.image_dir)[stem])
        gt = cv2.imread(str(images_by_stem(located_split.mask_dir)[stem]), cv2.IMREAD_GRAYSCALE)
        pred = cv2.imread(str(alpha_root / split / "alpha" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE)
        magnified = np.clip(np.abs(pred.astype(np.int16) - gt) * 2, 0, 255).astype(np.uint8)
        error = cv2.applyColorMap(magnified, cv2.COLORMAP_INFERNO)
        panels = [image, *(np.repeat(m[..., None], 3, axis=2) for m in (gt, pred)), error[..., ::-1]]
        rows.append(np.concatenate([_fit(p, height) for p in panels], axis=1))
    if not rows:
        return
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    write_image(path, np.concatenate(rows, axis=0))
