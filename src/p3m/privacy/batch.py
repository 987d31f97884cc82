"""``p3m anonymize`` over many images: fail-closed, resumable, atomic, audited.

Outputs: OUT/blurred_image/<name> (JPEG keeps its quantisation tables unless a quality
is given; PNG stays PNG), OUT/facemask/<stem>.png (the blurred region), OUT/mask/ (the
mattes, with --alpha), and OUT/report.csv / report.json with one row per image.
"""

from __future__ import annotations

import csv
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from p3m.data.layout import images_by_stem
from p3m.io.discovery import InputItem
from p3m.io.images import read_image_file, read_matte
from p3m.io.writers import write_image
from p3m.privacy.anonymize import DEFAULT_FOREHEAD, DEFAULT_STRENGTH, anonymize
from p3m.privacy.audit import audit_pair, changed_transition_pixels
from p3m.utils.files import atomic_path
from p3m.utils.progress import BatchProgress, BatchSummary

#: Statuses after which an anonymised image exists.
WRITTEN = ("ok", "hand-mask", "no-face-copied")
REPORT_FIELDS = ("image", "status", "faces", "low_confidence", "redetected", "min_identity_distance",
                 "identity_matches", "changed_transition_pixels", "changed_outside_fraction", "message")


@dataclass
class AnonymizeOptions:
    strength: str = DEFAULT_STRENGTH
    sigma_scale: float | None = None
    forehead: float = DEFAULT_FOREHEAD
    detector: str = "hog"
    protect_dilation: int = 0
    alpha_dir: Path | None = None
    facemask_dir: Path | None = None
    allow_no_face: bool = False
    overwrite: bool = False
    workers: int = 1
    jpeg_quality: int | None = None  # None: keep the input's quantisation tables
    audit: bool = True


def _save_like_input(source: Path, array: np.ndarray, target: Path, quality: int | None) -> None:
    if source.suffix.lower() not in (".jpg", ".jpeg"):
        write_image(target, array)  # _output_name already made it .png
        return
    with atomic_path(target) as tmp:
        image = Image.fromarray(array)
        if quality is not None:
            image.save(tmp, format="JPEG", quality=quality)
        else:
            with Image.open(source) as original:
                from PIL import JpegImagePlugin

                image.save(tmp, format="JPEG", qtables=original.quantization,
                           subsampling=JpegImagePlugin.get_sampling(original))


def _output_name(item: InputItem) -> Path:
    suffix = item.path.suffix.lower()
    return item.relative if suffix in (".jpg", ".jpeg", ".png") else item.key.with_suffix(".png")


def anonymize_one(item: InputItem, out: Path, options: AnonymizeOptions, mattes: dict, hand_masks: dict) -> dict:
    row = {"image": str(item.relative), "status": "error", "faces": 0, "message": ""}
    stem = item.path.stem
    image = read_image_file(item.path)
    alpha = None
    if options.alpha_dir is not None:
        if stem not in mattes:
            row.update(status="missing-matte", message=f"no matte named {stem} in {options.alpha_dir}")
            return row
        alpha = read_matte(mattes[stem])
        if alpha.shape != image.shape[:2]:
            row.update(message=f"matte {mattes[stem].name} is {alpha.shape[1]}x{alpha.shape[0]}, "
                                f"image is {image.shape[1]}x{image.shape[0]}")
            return row
    kwargs = dict(strength=options.strength, sigma_scale=options.sigma_scale, forehead=options.forehead,
                  detector=options.detector, protect_dilation=options.protect_dilation)
    result = anonymize(image, alpha, **kwargs)
    if result.status == "no-face" and stem in hand_masks:
        result = anonymize(image, alpha, facemask=read_image_file(hand_masks[stem])[..., 0], **kwargs)
    status = result.status
    if status == "no-face":
        if not options.allow_no_face:
            row.update(status="no-face", message="no face found: not written (review it, supply --facemask, "
                                                 "or --allow-no-face for back views)")
            return row
        status, anonymised = "no-face-copied", image
    else:
        anonymised = result.image
    name = _output_name(item)
    _save_like_input(item.path, anonymised, out / "blurred_image" / name, options.jpeg_quality)
    write_image(out / "facemask" / item.key.with_suffix(".png"), result.mask)
    if alpha is not None:
        target = out / "mask" / item.key.with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(mattes[stem], target)
    row.update(status=status, faces=len(result.faces))
    if options.audit and status != "no-face-copied":
        audit = audit_pair(image, anonymised, faces=result.detected, alpha=alpha, face_mask=result.mask,
                           detector=options.detector) if result.detected else None
        if audit is not None:
            row.update(low_confidence=audit.low_confidence, redetected=audit.redetected,
                       min_identity_distance=round(min(audit.distances), 4) if audit.distances else "",
                       identity_matches=audit.identity_matches,
                       changed_transition_pixels=audit.changed_transition_pixels,
                       changed_outside_fraction=audit.changed_outside_fraction)
        elif alpha is not None:
            row["changed_transition_pixels"] = changed_transition_pixels(image, anonymised, alpha)
    return row


def run_anonymize(items: list[InputItem], out: Path, options: AnonymizeOptions,
                  progress: BatchProgress) -> tuple[BatchSummary, list[dict]]:
    mattes = images_by_stem(options.alpha_dir) if options.alpha_dir else {}
    hand_masks = images_by_stem(options.facemask_dir) if options.facemask_dir else {}
    rows = []

    def work(item: InputItem) -> dict:
        target = out / "blurred_image" / _output_name(item)
        if not options.overwrite and target.exists():
            return {"image": str(item.relative), "status": "skipped"}
        try:
            return anonymize_one(item, out, options, mattes, hand_masks)
        except Exception as exc:  # one bad image never stops the batch
            return {"image": str(item.relative), "status": "error", "message": str(exc)}

    with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
        for item, row in zip(items, pool.map(work, items)):
            rows.append(row)
            if row["status"] == "skipped":
                progress.skipped(str(item.path))
            elif row["status"] in WRITTEN:
                progress.done(str(item.path))
            else:
                progress.failed(str(item.path), f"{row['status']}: {row.get('message', '')}")
    write_report(out, rows)
    return progress.close(), rows


def write_report(out: Path, rows: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "report.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=REPORT_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
    audited = [r for r in rows if r.get("min_identity_distance") not in (None, "")]
    totals = {
        "images": len(rows),
        "anonymised": sum(r["status"] in WRITTEN for r in rows),
        "no_face": sum(r["status"] == "no-face" for r in rows),
        "errors": sum(r["status"] in ("error", "missing-matte") for r in rows),
        "faces": sum(int(r.get("faces") or 0) for r in rows),
        "redetected": sum(int(r.get("redetected") or 0) for r in rows),
        "identity_matches": sum(int(r.get("identity_matches") or 0) for r in rows),
        "changed_transition_pixels": sum(int(r.get("changed_transition_pixels") or 0) for r in rows),
        "audited_images": len(audited),
    }
    with atomic_path(out / "report.json") as tmp:
        tmp.write_text(json.dumps({"total": totals, "images": rows}, indent=2, default=str))
