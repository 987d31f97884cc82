"""The privacy audit of a folder of anonymized images against their originals."""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from p3m.data.layout import images_by_stem
from p3m.errors import DatasetError, OptionError
from p3m.io.images import read_image_file, read_matte
from p3m.jobs.progress import Progress
from p3m.jobs.results import ItemRecord, JobResult, Status
from p3m.privacy.audit import AuditResult, AuditTotals, audit_pair, reference_descriptors
from p3m.privacy.faces import resolve_detector


@dataclass
class AuditRecord(ItemRecord):
    audit: AuditResult | None = None

    def row(self) -> dict[str, Any]:
        return self.audit.to_dict()


@dataclass
class AuditReport(JobResult):
    records: list[AuditRecord] = field(default_factory=list)
    references: int = 0  # reference faces found

    @property
    def totals(self) -> AuditTotals:
        totals = AuditTotals()
        for record in self.records:
            totals.add(record.audit)
        return totals

    @property
    def leaks(self) -> bool:
        """A face still matches its identity, or a transition pixel changed."""
        totals = self.totals
        return bool(totals.identity_matches or totals.changed_transition_pixels)

    def to_dict(self) -> dict[str, Any]:
        totals = self.totals
        return {"total": {"images": totals.images, "faces": totals.faces, "redetected": totals.redetected,
                          "identity_matches": totals.identity_matches,
                          "changed_transition_pixels": totals.changed_transition_pixels},
                "images": {r.name: r.row() for r in self.records}}


def reference_files(reference: Path) -> list[Path]:
    """Photos of the people: every image in the subfolders, or the paths a CSV lists."""
    if reference.is_dir():
        return [f for person in sorted(p for p in reference.iterdir() if p.is_dir())
                for f in images_by_stem(person).values()]
    if reference.is_file() and reference.suffix.lower() == ".csv":
        with open(reference, newline="") as f:
            rows = [row for row in csv.reader(f) if row and not row[0].startswith("#")]
        if rows and rows[0][0].strip().lower() in ("image", "path", "file"):
            rows = rows[1:]
        return [(reference.parent / row[0].strip()).resolve() for row in rows]
    raise OptionError(f"reference {reference}: not a folder of person folders or a .csv file")


def audit_folders(originals: str | Path, anonymized: str | Path, *, reference: str | Path | None = None,
                  alpha: str | Path | None = None, detector: str = "auto",
                  progress: Progress | None = None) -> AuditReport:
    """Re-detection, identity distance (to the original face and to reference photos of
    the people) and matting integrity of each pair of images with the same stem."""
    start = time.perf_counter()
    progress = progress or Progress()
    for folder in (originals, anonymized, alpha):
        if folder is not None and not Path(folder).is_dir():
            raise DatasetError(f"{folder}: no such folder")
    report = AuditReport()
    detector = resolve_detector(detector)  # once, not per image
    references = []
    if reference is not None:
        references = reference_descriptors([read_image_file(f) for f in reference_files(Path(reference))], detector)
        report.references = len(references)
    before, after = images_by_stem(Path(originals)), images_by_stem(Path(anonymized))
    mattes = images_by_stem(Path(alpha)) if alpha else {}
    stems = sorted(set(before) & set(after))
    progress.start(len(stems), "audit")
    for stem in stems:
        matte = read_matte(mattes[stem]) if stem in mattes else None
        audit = audit_pair(read_image_file(before[stem]), read_image_file(after[stem]), alpha=matte,
                           references=references or None, detector=detector)
        record = AuditRecord(stem, Status.DONE, audit=audit)
        report.records.append(record)
        progress.record(record)
    progress.close()
    report.seconds = time.perf_counter() - start
    return report
