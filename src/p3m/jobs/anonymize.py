"""Anonymizing a set of images: fail-closed, resumable, atomic, audited.

Outputs: OUT/blurred_image/<name> (JPEG keeps its quantisation tables unless a quality
is given; PNG stays PNG), OUT/facemask/<path>.png (the blurred region), OUT/mask/ (the
mattes, with ``alpha_dir``), and OUT/report.csv / report.json with one row per image.

Each image goes through the one fail-closed rule, :func:`p3m.privacy.anonymize.anonymize`:
an image without a detected face is not written, and every anonymized image is audited
(and blurred harder while a face is still found or recognised) before it is written;
an image still identifiable is held back. Each finished image is appended to
OUT/report.jsonl at once, so a killed run loses no row; the report accumulates over
runs, and an image is skipped only when its row says it was written, its outputs exist
and the input is the one that row was made from (its SHA-256). An image that is not
written this time loses the outputs earlier runs wrote for it: the folder never holds
an output its report does not vouch for.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from p3m.data.layout import images_by_stem
from p3m.errors import DatasetError, ImageError
from p3m.io.discovery import IMAGE_SUFFIXES, InputItem, collect_images, is_video
from p3m.io.images import open_image, read_image_with_alpha, read_matte
from p3m.io.outputs import OutputPlan, exclusive, output_folder
from p3m.io.writers import write_image
from p3m.jobs.progress import Progress
from p3m.jobs.results import ItemRecord, JobResult, Status, failure_reason, images_and_videos
from p3m.options import AnonymizeOptions, ClusterOptions
from p3m.privacy.anonymize import Outcome, anonymize, prepared
from p3m.privacy.audit import changed_transition_pixels
from p3m.utils.files import atomic_path, file_sha256

REPORT_FIELDS = ("image", "status", "faces", "frames", "sigma_scale", "low_confidence", "redetected", "min_identity_distance",
                 "identity_matches", "changed_transition_pixels", "changed_outside_fraction", "message")
JOURNAL = "report.jsonl"


def status_of(outcome: Outcome) -> Status:
    """The job's status of an image's outcome."""
    if outcome.written:
        return Status.DONE
    if outcome is Outcome.SKIPPED:
        return Status.SKIPPED
    return Status.HELD_BACK if outcome.held_back else Status.FAILED


@dataclass
class AnonymizeRecord(ItemRecord):
    image: str = ""                    # relative path, as the report names it
    outcome: Outcome = Outcome.ERROR
    faces: int = 0
    sigma_scale: float | None = None              # the blur finally used (a video: its strongest), x face width
    audit: Any = None                             # a photo's AuditResult, a video's VideoAudit
    changed_transition_pixels: int | None = None  # without an audit, with a matte
    previous: dict[str, Any] | None = None        # a skipped image's row from an earlier run
    input_sha256: str | None = None               # of the input as read, so a rerun knows a replaced one
    hold_unaudited: bool = False                  # written under hold_unaudited (a stricter rerun redoes others)

    def row(self) -> dict[str, Any]:
        """The report's row (report.csv / report.json)."""
        if self.previous is not None:
            return self.previous
        row: dict[str, Any] = {"image": self.image, "status": self.outcome.value, "faces": self.faces,
                               "message": self.reason}
        if self.sigma_scale is not None:
            row["sigma_scale"] = round(self.sigma_scale, 4)
        if self.frames is not None:
            row["frames"] = self.frames  # a video: its faces are detections over these frames
        if self.audit is not None:
            audit = self.audit.to_dict()
            row.update({key: audit[key] for key in REPORT_FIELDS if key in audit and key != "faces"})
            row["min_identity_distance"] = "" if audit["min_identity_distance"] is None else audit["min_identity_distance"]
        if self.changed_transition_pixels is not None:
            row["changed_transition_pixels"] = self.changed_transition_pixels
        if self.hold_unaudited:
            row["hold_unaudited"] = True
        if self.input_sha256 is not None:
            row["input_sha256"] = self.input_sha256
        return row


@dataclass
class AnonymizeReport(JobResult):
    records: list[AnonymizeRecord] = field(default_factory=list)
    earlier: dict[str, dict[str, Any]] = field(default_factory=dict)  # rows of earlier runs, by image
    detector: str = ""  # the detector families this run used

    def rows(self) -> list[dict[str, Any]]:
        """This run's rows, then earlier runs' rows of images this run did not see."""
        mine = [r.row() for r in self.records]
        seen = {row["image"] for row in mine}
        return mine + [row for image, row in self.earlier.items() if image not in seen]

    def totals(self) -> dict[str, int]:
        rows = self.rows()

        def total(key: str, of=rows) -> int:
            return sum(int(row.get(key) or 0) for row in of)

        return {"images": len(rows), "anonymized": sum(Outcome(r["status"]).written for r in rows),
                "no_face": sum(r["status"] == Outcome.NO_FACE for r in rows),
                "person_without_face": sum(r["status"] == Outcome.PERSON_WITHOUT_FACE for r in rows),
                "identifiable": sum(r["status"] == Outcome.IDENTIFIABLE for r in rows),
                "unaudited": sum(r["status"] == Outcome.UNAUDITED for r in rows),
                "errors": sum(r["status"] in (Outcome.ERROR, Outcome.MISSING_MATTE) for r in rows),
                "faces": total("faces", [r for r in rows if Outcome(r["status"]).written]),  # blurred and written
                "redetected": total("redetected"),
                "identity_matches": total("identity_matches"),
                "changed_transition_pixels": total("changed_transition_pixels"),
                "audited_images": sum(r.get("min_identity_distance") not in (None, "") for r in rows)}

    def earlier_rows(self) -> int:
        """Rows of the report that earlier runs wrote (skipped now, or not given this time)."""
        mine = {r.image for r in self.records if r.previous is None}
        return sum(row["image"] not in mine for row in self.rows())

    def audit_line(self) -> str:
        """The folder's privacy outcome, over the whole report (earlier runs' rows too, said so)."""
        t = self.totals()
        videos = sum(Outcome(r["status"]).written and "frames" in r for r in self.rows())
        earlier = self.earlier_rows()
        return ((f"over the folder's report ({earlier} of {t['images']} from earlier runs): " if earlier else "")
                + f"{t['faces']} face(s) blurred in {images_and_videos(t['anonymized'] - videos, videos)}; "
                f"re-detected {t['redetected']}; "
                f"identity matches {t['identity_matches']}; changed transition pixels "
                f"{t['changed_transition_pixels']}; held back for review: {t['no_face']} without a face, "
                f"{t['person_without_face']} with a person but no face found, "
                f"{t['identifiable']} still identifiable"
                + (f", {t['unaudited']} with a region the audit cannot check" if t["unaudited"] else ""))

    def to_dict(self) -> dict[str, Any]:
        return {"detector": self.detector, "total": self.totals(), "images": self.rows()}


def _save_like_input(source: Path, array: np.ndarray, target: Path, quality: int | None) -> None:
    if source.suffix.lower() not in (".jpg", ".jpeg"):
        write_image(target, array)  # _output_name already made it .png
        return
    with atomic_path(target) as tmp:
        image = Image.fromarray(array)
        with open_image(source) as original:
            if quality is not None or original.format not in ("JPEG", "MPO"):  # a PNG named .jpg has no tables
                image.save(tmp, format="JPEG", quality=quality or 95)
            else:
                from PIL import JpegImagePlugin

                image.save(tmp, format="JPEG", qtables=original.quantization,
                           subsampling=JpegImagePlugin.get_sampling(original))


def _output_name(item: InputItem) -> Path:
    suffix = item.path.suffix.lower()
    return item.relative if suffix in (".jpg", ".jpeg", ".png") else item.key.with_suffix(".png")


def output_paths(plan: OutputPlan, item: InputItem, *, matte: bool) -> dict[str, Path]:
    """Where one image's outputs go: blurred image, facemask, and the matte's copy (a
    video's: its blurred video, blurred_image/KEY.mp4)."""
    if is_video(item.path):
        return {"blurred_image": plan.path("blurred_image", item.key.with_suffix(".mp4"))}
    paths = {"blurred_image": plan.path("blurred_image", _output_name(item)),
             "facemask": plan.path("facemask", item.key.with_suffix(".png"))}
    if matte:
        paths["mask"] = plan.path("mask", item.key.with_suffix(".png"))
    return paths


def _record(item: InputItem, outcome: Outcome, reason: str = "", **fields) -> AnonymizeRecord:
    message = outcome.said(reason) if reason else ""
    return AnonymizeRecord(str(item.path), status_of(outcome), message,
                           image=str(item.relative), outcome=outcome, **fields)


class MatteIndex:
    """The mattes of a folder, found for an input by its relative path (the tree
    ``p3m matte`` writes), or by its stem only where that cannot be mistaken."""

    def __init__(self, folder: Path, items: list[InputItem]) -> None:
        if (folder / "alpha").is_dir() and not images_by_stem(folder):
            folder = folder / "alpha"  # the output folder of p3m matte
        self.folder = folder
        # keyed by (path without suffix, is a video): a photo's matte x.png and a video's x.mp4 both stay
        self.by_key = {(p.relative_to(folder).with_suffix(""), is_video(p)): p for p in sorted(folder.rglob("*"))
                       if p.is_file() and (p.suffix.lower() in IMAGE_SUFFIXES or is_video(p))}
        self.by_stem: dict[tuple[str, bool], list[Path]] = {}
        for (_, video), path in self.by_key.items():
            self.by_stem.setdefault((path.stem, video), []).append(path)
        self.input_stems = Counter(item.path.stem for item in items)

    def find(self, item: InputItem) -> Path | None:
        """The matte of ``item`` (an alpha video for a video, an image for a photo; the
        other kind where only that exists, which the caller refuses); None if there is
        none; an error if the choice would be a guess."""
        video = is_video(item.path)
        for kind in (video, not video):
            if (item.key, kind) in self.by_key:
                return self.by_key[(item.key, kind)]
        candidates = self.by_stem.get((item.path.stem, video), []) or self.by_stem.get((item.path.stem, not video), [])
        if len(candidates) > 1 or (candidates and self.input_stems[item.path.stem] > 1):
            raise ImageError(f"no matte at {item.key} in {self.folder}, and the stem {item.path.stem!r} is "
                             "ambiguous there; arrange the mattes like the inputs (as p3m matte writes them)")
        return candidates[0] if candidates else None


def _frames(indices: list[int]) -> str:
    """The first five frame numbers, for a reason line ("3, 4, 5, 6, 7 ...")."""
    return ", ".join(map(str, indices[:5])) + (" ..." if len(indices) > 5 else "")


def anonymize_video_item(item: InputItem, plan: OutputPlan, options: AnonymizeOptions,
                         progress: Progress | None = None, matte: Path | None = None) -> AnonymizeRecord:
    """One video: every frame blurred, detections carried between frames, fail closed;
    ``matte``: its alpha video, whose transition pixels are kept."""
    from p3m.video.anonymize import anonymize_video

    target = output_paths(plan, item, matte=False)["blurred_image"]
    outcome, audit = anonymize_video(item.path, target, options.face_options(), progress=progress,
                                     max_pixels=options.max_pixels, alpha=matte)
    if outcome is Outcome.IDENTIFIABLE:
        frames = _frames(audit.uncovered)
        cut = (f"; in {audit.uncovered_cut} of them the closest face is cut by the frame, where no blur changes "
               "what a recogniser sees: trim those frames, or review it" if audit.uncovered_cut else "")
        reason = (f"a face is still detected, recognised or within the identity margin at the strongest blur in "
                  f"frame(s) {frames}: not written ({audit.line()}{cut})")
    elif outcome is Outcome.NO_FACE:
        reason = f"no face in any of {audit.frames} frames: not written (review it, or --allow-no-face)"
    elif outcome is Outcome.PERSON_WITHOUT_FACE:
        frames = _frames(audit.faceless)
        reason = (f"a person is seen but no face found or carried in frame(s) {frames}: not written (review it, "
                  f"or --allow-no-face to blur their heads)")
    elif outcome is Outcome.UNAUDITED:
        frames = _frames(audit.unaudited)
        reason = (f"something blurred the identity audit cannot check (the head of a person whose face was not "
                  f"found, or a weak detection) in frame(s) {frames}: not written, as --hold-unaudited asks "
                  "(review it)")
    else:
        reason = audit.line()
    record = _record(item, outcome, reason, faces=audit.faces, sigma_scale=audit.sigma_scale, frames=audit.frames,
                     audit=audit if audit.frames_with_faces else None)
    if matte is not None:
        record.changed_transition_pixels = audit.changed_transition_pixels
    if outcome.written:
        record.outputs = {"blurred_image": str(target)}
    return record


def anonymize_one(item: InputItem, plan: OutputPlan, options: AnonymizeOptions, mattes: MatteIndex | None,
                  hand_masks: dict, progress: Progress | None = None) -> AnonymizeRecord:
    matte = mattes.find(item) if mattes is not None else None
    if mattes is not None and matte is None:
        return _record(item, Outcome.MISSING_MATTE, f"no matte for {item.key} in {mattes.folder}")
    if matte is not None and is_video(matte) != is_video(item.path):
        return _record(item, Outcome.ERROR, f"its matte {matte} is " + ("a video" if is_video(matte) else "an image"))
    if is_video(item.path):
        return anonymize_video_item(item, plan, options, progress, matte)
    image, transparency = read_image_with_alpha(item.path, max_pixels=options.max_pixels)
    alpha = None
    if matte is not None:
        alpha = read_matte(matte)
        if alpha.shape != image.shape[:2]:
            return _record(item, Outcome.ERROR, f"matte {matte.name} is {alpha.shape[1]}x{alpha.shape[0]}, "
                                                f"image is {image.shape[1]}x{image.shape[0]}")
    stored = image if transparency is None else np.dstack([image, transparency])  # its alpha comes back as it was
    result = anonymize(stored, alpha, options, hand_mask=hand_masks.get(item.path.stem))
    outcome, audit, scale = result.status, result.audit, result.sigma_scale
    if outcome.held_back:
        return _record(item, outcome, result.reason, faces=len(result.faces), sigma_scale=scale, audit=audit)
    anonymized = result.image
    written = output_paths(plan, item, matte=matte is not None)
    _save_like_input(item.path, anonymized, written["blurred_image"], options.jpeg_quality)
    write_image(written["facemask"], result.mask)
    if matte is not None:
        with atomic_path(written["mask"]) as tmp:
            shutil.copyfile(matte, tmp)
    record = _record(item, outcome, faces=len(result.faces), audit=audit,
                     sigma_scale=scale if outcome is not Outcome.NO_FACE_COPIED else None)
    record.outputs = {kind: str(path) for kind, path in written.items()}
    if audit is None and alpha is not None and outcome is not Outcome.NO_FACE_COPIED:
        record.changed_transition_pixels = changed_transition_pixels(image, anonymized[..., :3], alpha)
    return record


def anonymize_item(progress: Progress | None, job: tuple) -> AnonymizeRecord:
    """One image or video, start to finish, never raising (what a cluster actor runs per
    item). The input's digest is taken before it is read: if it changes meanwhile, the
    next run sees a digest that does not match and does it again."""
    item, plan, options, mattes, hand_masks = job
    try:
        digest = file_sha256(item.path)
        record = anonymize_one(item, plan, options, mattes, hand_masks, progress)
        record.input_sha256, record.hold_unaudited = digest, options.hold_unaudited
    except Exception as exc:  # one bad image never stops the batch
        record = _record(item, Outcome.ERROR, failure_reason(exc))
    if not record.outcome.written:
        _remove_outputs(plan, item)
    return record


def _remove_outputs(plan: OutputPlan, item: InputItem) -> None:
    """Take away what earlier runs wrote for an image this run did not write (held back
    now, or failed), so the folder and its report agree."""
    for path in output_paths(plan, item, matte=True).values():
        path.unlink(missing_ok=True)


def _read_journal(out: Path) -> dict[str, dict[str, Any]]:
    """Rows of earlier runs by image (the last row of an image wins; a torn last line is skipped)."""
    rows: dict[str, dict[str, Any]] = {}
    journal = out / JOURNAL
    if journal.is_file():
        for line in journal.read_text().splitlines():
            try:
                row = json.loads(line)
                rows[row["image"]] = row
            except (ValueError, KeyError, TypeError):
                continue
    return rows


def _finished(row: dict[str, Any] | None, plan: OutputPlan, item: InputItem, strict: bool) -> bool:
    """An earlier run wrote every output of this image from the input as it is now, and its
    row says so (a row without a digest, from before digests were kept, is done again); with
    ``strict`` (hold_unaudited), under that option too: a stricter rerun must not keep
    what a laxer run wrote."""
    if row is None or row.get("status") not in [o.value for o in Outcome if o.written]:
        return False
    if strict and not row.get("hold_unaudited"):
        return False
    if not all(path.is_file() for path in output_paths(plan, item, matte=False).values()):
        return False
    try:
        return row.get("input_sha256") == file_sha256(item.path)
    except OSError:
        return False  # unreadable now: the run will say why


def anonymize_files(inputs: Sequence[str | Path], out: str | Path, options: AnonymizeOptions | None = None, *,
                    progress: Progress | None = None, cluster: ClusterOptions | None = None) -> AnonymizeReport:
    """Blur the faces of every image ``inputs`` names, fail closed, audit each, and write
    the report; the returned report holds every record and the totals. With ``cluster``,
    the images are spread over Ray actors; the report is the single-machine one."""
    start = time.perf_counter()
    options, progress = options or AnonymizeOptions(), progress or Progress()
    options = prepared(options)
    out = output_folder(out)
    with exclusive(out):
        return _anonymize_into(out, inputs, options, progress, cluster, start)


def _anonymize_into(out: Path, inputs: Sequence[str | Path], options: AnonymizeOptions, progress: Progress,
                    cluster: ClusterOptions | None, start: float) -> AnonymizeReport:
    """anonymize_files once the output folder is this run's alone."""
    items, problems = collect_images([str(i) for i in inputs], exclude=out, videos=True)
    plan = OutputPlan(out, [item.path for item in items])
    if options.alpha_dir is not None and not Path(options.alpha_dir).is_dir():
        raise DatasetError(f"{options.alpha_dir}: no such folder of mattes")
    mattes = MatteIndex(Path(options.alpha_dir), items) if options.alpha_dir else None
    hand_masks = images_by_stem(options.facemask_dir) if options.facemask_dir else {}
    report = AnonymizeReport(earlier=_read_journal(out), detector=options.detector)
    progress.start(len(items) + len(problems), "anonymize")
    lock = threading.Lock()

    def finish(record: AnonymizeRecord) -> None:
        with lock:
            report.records.append(record)
            if record.previous is None and record.outcome is not Outcome.SKIPPED:
                with open(out / JOURNAL, "a") as journal:
                    journal.write(json.dumps(record.row(), default=str) + "\n")
                    journal.flush()
                    os.fsync(journal.fileno())
            progress.record(record)

    for spec, reason in problems:
        finish(AnonymizeRecord(spec, Status.FAILED, reason, image=spec, outcome=Outcome.ERROR))

    def skipped(item: InputItem) -> AnonymizeRecord | None:
        previous = report.earlier.get(str(item.relative))
        if not options.overwrite and _finished(previous, plan, item, options.hold_unaudited):
            return _record(item, Outcome.SKIPPED, previous=previous)
        return None

    def work(item: InputItem) -> AnonymizeRecord:
        return skipped(item) or anonymize_item(progress, (item, plan, options, mattes, hand_masks))

    if cluster is not None:
        from p3m.cluster.ray_pool import ActorPool

        earlier = [skipped(item) for item in items]
        jobs = [(item, plan, options, mattes, hand_masks) for item, record in zip(items, earlier) if record is None]
        with ActorPool(cluster, Progress) as pool:  # each actor's state: a silent Progress
            results = pool.map(anonymize_item, jobs,  # in input order, as they finish
                               failed=lambda job, reason: _record(job[0], Outcome.ERROR, reason))  # workers died
            for record in earlier:  # each journalled as it comes in, so a stopped run resumes
                finish(record or next(results))
    else:
        with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
            for record in pool.map(work, items):
                finish(record)
    progress.close()
    report.seconds = time.perf_counter() - start
    write_report(out, report)
    return report


def write_report(out: Path, report: AnonymizeReport) -> None:
    """report.csv and report.json, and the journal compacted to one row per image (it
    grew by a row per image and run)."""
    rows = report.rows()
    with atomic_path(out / JOURNAL) as tmp, open(tmp, "w") as journal:  # on disk before it replaces the history
        journal.write("".join(json.dumps(row, default=str) + "\n" for row in rows))
        journal.flush()
        os.fsync(journal.fileno())
    folder = os.open(out, os.O_RDONLY)
    try:
        os.fsync(folder)  # and the rename with it
    finally:
        os.close(folder)
    with atomic_path(out / "report.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=REPORT_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
    with atomic_path(out / "report.json") as tmp:
        tmp.write_text(json.dumps(report.to_dict(), indent=2, default=str))
