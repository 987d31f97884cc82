"""Anonymizing a set of images: fail-closed, resumable, atomic, audited.

Outputs: OUT/blurred_image/<name> (JPEG keeps its quantisation tables unless a quality
is given; PNG stays PNG), OUT/facemask/<stem>.png (the blurred region), OUT/mask/ (the
mattes, with ``alpha_dir``), and OUT/report.csv / report.json with one row per image,
written from the returned :class:`AnonymizeReport`.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from p3m.data.layout import images_by_stem
from p3m.io.discovery import InputItem, collect_images
from p3m.io.images import read_image_file, read_matte
from p3m.io.writers import write_image
from p3m.jobs.results import ItemRecord, JobResult, Status, failure_reason
from p3m.privacy.anonymize import DEFAULT_FOREHEAD, DEFAULT_STRENGTH, Outcome, anonymize
from p3m.privacy.audit import AuditResult, AuditTotals, audit_pair, changed_transition_pixels
from p3m.utils.files import atomic_path
from p3m.utils.progress import Progress

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


@dataclass
class AnonymizeRecord(ItemRecord):
    image: str = ""                    # relative path, as the report names it
    outcome: Outcome = Outcome.ERROR
    faces: int = 0
    audit: AuditResult | None = None
    changed_transition_pixels: int | None = None  # without an audit, with a matte

    def row(self) -> dict[str, Any]:
        """The report's row (report.csv / report.json)."""
        row: dict[str, Any] = {"image": self.image, "status": self.outcome.value, "faces": self.faces,
                               "message": self.reason}
        audit = self.audit
        if audit is not None:
            row.update(low_confidence=audit.low_confidence, redetected=audit.redetected,
                       min_identity_distance=round(min(audit.distances), 4) if audit.distances else "",
                       identity_matches=audit.identity_matches,
                       changed_transition_pixels=audit.changed_transition_pixels,
                       changed_outside_fraction=audit.changed_outside_fraction)
        elif self.changed_transition_pixels is not None:
            row["changed_transition_pixels"] = self.changed_transition_pixels
        return row


@dataclass
class AnonymizeReport(JobResult):
    records: list[AnonymizeRecord] = field(default_factory=list)

    @property
    def audit(self) -> AuditTotals:
        totals = AuditTotals()
        for record in self.records:
            totals.add(record.audit, record.changed_transition_pixels)
        return totals

    def totals(self) -> dict[str, int]:
        audit = self.audit
        return {"images": len(self.records), "anonymized": sum(r.outcome.written for r in self.records),
                "no_face": sum(r.outcome is Outcome.NO_FACE for r in self.records),
                "errors": sum(r.outcome in (Outcome.ERROR, Outcome.MISSING_MATTE) for r in self.records),
                "faces": audit.faces, "redetected": audit.redetected, "identity_matches": audit.identity_matches,
                "changed_transition_pixels": audit.changed_transition_pixels,
                "audited_images": audit.audited_images}

    def audit_line(self) -> str:
        totals = self.totals()
        return (f"{totals['faces']} face(s) blurred in {totals['anonymized']} image(s); {self.audit.line()}; "
                f"{totals['no_face']} image(s) without a face held back for review")

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.totals(), "images": [r.row() for r in self.records]}


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


def _record(item: InputItem, outcome: Outcome, reason: str = "", **fields) -> AnonymizeRecord:
    message = f"{outcome.value}: {reason}" if reason else ""
    return AnonymizeRecord(str(item.path), outcome.status, message,
                           image=str(item.relative), outcome=outcome, **fields)


def anonymize_one(item: InputItem, out: Path, options: AnonymizeOptions, mattes: dict,
                  hand_masks: dict) -> AnonymizeRecord:
    stem = item.path.stem
    image = read_image_file(item.path)
    alpha = None
    if options.alpha_dir is not None:
        if stem not in mattes:
            return _record(item, Outcome.MISSING_MATTE, f"no matte named {stem} in {options.alpha_dir}")
        alpha = read_matte(mattes[stem])
        if alpha.shape != image.shape[:2]:
            return _record(item, Outcome.ERROR, f"matte {mattes[stem].name} is {alpha.shape[1]}x{alpha.shape[0]}, "
                                                f"image is {image.shape[1]}x{image.shape[0]}")
    kwargs = dict(strength=options.strength, sigma_scale=options.sigma_scale, forehead=options.forehead,
                  detector=options.detector, protect_dilation=options.protect_dilation)
    result = anonymize(image, alpha, **kwargs)
    if result.status is Outcome.NO_FACE and stem in hand_masks:
        result = anonymize(image, alpha, facemask=read_image_file(hand_masks[stem])[..., 0], **kwargs)
    outcome = result.status
    if outcome is Outcome.NO_FACE:
        if not options.allow_no_face:
            return _record(item, Outcome.NO_FACE, "no face found: not written (review it, supply --facemask, "
                                                  "or --allow-no-face for back views)")
        outcome, anonymized = Outcome.NO_FACE_COPIED, image
    else:
        anonymized = result.image
    written = {"blurred_image": out / "blurred_image" / _output_name(item),
               "facemask": out / "facemask" / item.key.with_suffix(".png")}
    _save_like_input(item.path, anonymized, written["blurred_image"], options.jpeg_quality)
    write_image(written["facemask"], result.mask)
    if alpha is not None:
        written["mask"] = out / "mask" / item.key.with_suffix(".png")
        written["mask"].parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(mattes[stem], written["mask"])
    record = _record(item, outcome, faces=len(result.faces))
    record.outputs = {kind: str(path) for kind, path in written.items()}
    if options.audit and outcome is not Outcome.NO_FACE_COPIED and result.detected:
        record.audit = audit_pair(image, anonymized, faces=result.detected, alpha=alpha, face_mask=result.mask,
                                  detector=options.detector)
    elif options.audit and outcome is not Outcome.NO_FACE_COPIED and alpha is not None:
        record.changed_transition_pixels = changed_transition_pixels(image, anonymized, alpha)
    return record


def anonymize_files(inputs: Sequence[str | Path], out: str | Path, options: AnonymizeOptions | None = None, *,
                    progress: Progress | None = None) -> AnonymizeReport:
    """Blur the faces of every image ``inputs`` names, fail closed, audit each, and write
    the report; the returned report holds every record and the totals."""
    start = time.perf_counter()
    options, progress, out = options or AnonymizeOptions(), progress or Progress(), Path(out)
    items, problems = collect_images([str(i) for i in inputs])
    mattes = images_by_stem(options.alpha_dir) if options.alpha_dir else {}
    hand_masks = images_by_stem(options.facemask_dir) if options.facemask_dir else {}
    report = AnonymizeReport()
    progress.start(len(items) + len(problems), "anonymize")
    for spec, reason in problems:
        record = AnonymizeRecord(spec, Status.FAILED, reason, image=spec, outcome=Outcome.ERROR)
        report.records.append(record)
        progress.record(record)

    def work(item: InputItem) -> AnonymizeRecord:
        target = out / "blurred_image" / _output_name(item)
        if not options.overwrite and target.exists():
            return _record(item, Outcome.SKIPPED)
        try:
            return anonymize_one(item, out, options, mattes, hand_masks)
        except Exception as exc:  # one bad image never stops the batch
            return _record(item, Outcome.ERROR, failure_reason(exc))

    with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
        for record in pool.map(work, items):
            report.records.append(record)
            progress.record(record)
    progress.close()
    report.seconds = time.perf_counter() - start
    write_report(out, report)
    return report


def write_report(out: Path, report: AnonymizeReport) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "report.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=REPORT_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for record in report.records:
            writer.writerow(record.row())
    with atomic_path(out / "report.json") as tmp:
        tmp.write_text(json.dumps(report.to_dict(), indent=2, default=str))
