"""Face-detection recall and its cost, on labelled real photos held out of all tuning.

Photos: :data:`p3m.privacy.sample_photos.PHOTOS` (a group photo of six from the
insightface 0.7.3 sdist, portraits from the face_recognition 1.3.0 sdist, an aligned
112 px face), fetched once from PyPI, plus variants made from them:

- upright: as published;
- turned 90 / 180 / 270: ``np.rot90``; tilted 30 / 45: rotated in the image plane;
- mirrored;
- small: the group photo and two portraits shrunk so that faces are 18-35 px wide, in
  a 1920 x 1080 frame.

For each detector setting (dlib HOG alone, and HOG + BlazeFace) and each variant, every
photo goes through ``p3m anonymize``'s own loop (blur, audit, blur more, or hold back).
A labelled face is **found** when a detection is the same face (IoU >= 0.3 or a centre
inside the other box); it is **covered** when at least 80% of the central half of its
box (eyes, nose, mouth) changed; it **leaked** when its photo was written as anonymised
and it is not covered. Also: false detections, the pixels changed away from every
labelled face (box padded by half its size), the identity distances at the default
strength, and the time per 1080p photo. Recall is measured without a matte; a second
pass anonymises the upright photos with an alpha matte from the default engine and
counts the changed transition pixels (must be 0).

**Cut by the frame**: for each labelled face not already touching the border, four crops
of its photo cut that face: its top 45% cut off (the crop starts at top + 0.45 x height),
its left half (the crop starts at the face's horizontal centre), its right half (the crop
ends there), its bottom 45%. Each labelled box is clipped to the crop. The face cut on
purpose is a **cut face**; any other labelled face partly inside with at least
``MIN_VISIBLE`` (30%) of its box visible is a cut face too; one with less is ignored (a
detection there is neither a hit nor a false detection); faces wholly inside count as
usual. A face is **found** when a detection, clipped to the crop, is the same face as its
clipped box (``same_face``: IoU >= 0.3 or a centre inside the other box); **covered** when
80% of the central half of its clipped box changed; **leaked** as above. Each crop runs
with the edge search on (the default) and off; off is ``p3m.privacy.faces._edge_faces``
replaced by a function that finds nothing, inside this process only. Every cut face
missed, or written uncovered, is listed. The cost of the edge search: ``detect_faces``
per upright photo with ``edges=True`` and ``edges=False``, interleaved, best of 3.

    python benchmarks/privacy_recall.py [--photos DIR] [--quick] [--cut-only]
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from p3m.io.images import read_image_file
from p3m.options import FaceBlurOptions
from p3m.privacy import faces as faces_module
from p3m.privacy.anonymize import anonymize
from p3m.privacy.audit import changed_transition_pixels
from p3m.privacy.faces import detect_faces, face_descriptor, same_face, turn_box
from p3m.privacy.sample_photos import PHOTOS, fetch_sample_photos
from p3m.weights.store import p3m_home

DETECTORS = ("hog", "hog+blazeface")


def tilt(image, boxes, degrees: float):
    """Rotate in the plane on a canvas that holds the whole image; boxes keep their size around their moved centre."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_w, new_h = int(height * sin + width * cos), int(height * cos + width * sin)
    matrix[0, 2] += new_w / 2 - width / 2
    matrix[1, 2] += new_h / 2 - height / 2
    out = cv2.warpAffine(image, matrix, (new_w, new_h), borderValue=(128, 128, 128))

    def move(box):
        cx, cy = matrix @ np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, 1.0])
        half_w, half_h = (box[2] - box[0]) / 2, (box[3] - box[1]) / 2
        return (round(cx - half_w), round(cy - half_h), round(cx + half_w), round(cy + half_h))

    return out, [move(b) for b in boxes]


def small(image, boxes, face_width: float):
    """Shrink so the mean labelled face is ``face_width`` px wide, centred in a grey 1920 x 1080 frame."""
    scale = face_width / np.mean([b[2] - b[0] for b in boxes])
    shrunk = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = np.full((1080, 1920, 3), 128, np.uint8)
    h, w = shrunk.shape[:2]
    top, left = (1080 - h) // 2, (1920 - w) // 2
    frame[top:top + h, left:left + w] = shrunk
    return frame, [tuple(round(v * scale) + o for v, o in zip(b, (left, top, left, top))) for b in boxes]


def variants(photo, image):
    """(variant, image, face boxes, ignore boxes) for one labelled photo."""
    faces, ignore = list(photo.faces), list(photo.ignore)
    yield "upright", image, faces, ignore
    for turns in (1, 2, 3):
        yield (f"turned {90 * turns}", np.ascontiguousarray(np.rot90(image, turns)),
               [turn_box(b, turns, image.shape[:2]) for b in faces], [turn_box(b, turns, image.shape[:2]) for b in ignore])
    for degrees in (30, 45):
        tilted, boxes = tilt(image, faces + ignore, degrees)
        yield f"tilted {degrees}", tilted, boxes[:len(faces)], boxes[len(faces):]
    width = image.shape[1]
    yield ("mirrored", np.ascontiguousarray(image[:, ::-1]), [(width - b[2], b[1], width - b[0], b[3]) for b in faces],
           [(width - b[2], b[1], width - b[0], b[3]) for b in ignore])
    if photo.name in ("group", "obama", "biden"):
        for face_width in (35, 25, 18):
            framed, boxes = small(image, faces + ignore, face_width)
            yield f"small ({face_width} px)", framed, boxes[:len(faces)], boxes[len(faces):]


def covered(changed: np.ndarray, box) -> bool:
    return core_changed(changed, box) >= 0.8


def core_changed(changed: np.ndarray, box) -> float:
    """The fraction of the central half of ``box`` (eyes, nose, mouth) that changed."""
    left, top, right, bottom = box
    qw, qh = (right - left) / 4, (bottom - top) / 4
    core = changed[max(0, int(top + qh)):int(bottom - qh), max(0, int(left + qw)):int(right - qw)]
    return float(core.mean()) if core.size else 0.0


def padded_mask(shape, boxes) -> np.ndarray:
    mask = np.zeros(shape[:2], bool)
    for left, top, right, bottom in boxes:
        pw, ph = (right - left) // 2, (bottom - top) // 2
        mask[max(0, top - ph):bottom + ph, max(0, left - pw):right + pw] = True
    return mask


def category(variant: str) -> str:
    return variant.split(" (")[0].split(" ")[0]


def run(photos: dict[str, Path], quick: bool) -> None:
    rows: dict[tuple, dict] = defaultdict(lambda: defaultdict(float))
    distances: dict[str, list[float]] = defaultdict(list)
    references: dict[str, list] = defaultdict(list)
    originals = {p.name: read_image_file(photos[p.name]) for p in PHOTOS}
    for photo in PHOTOS:  # reference descriptors: each person's faces in the upright photos
        image = originals[photo.name]
        for face in detect_faces(image, detector="hog", rotations=(0,)):
            for box, person in zip(photo.faces, photo.people):
                if face.confident and same_face(face.box, box):
                    references[person].append((photo.name, face_descriptor(image, face)))
    for photo in PHOTOS:
        image = originals[photo.name]
        for variant, img, boxes, ignore in variants(photo, image):
            if quick and variant not in ("upright", "turned 90", "small (25 px)"):
                continue
            for detector in DETECTORS:
                row = rows[(category(variant), detector)]
                start = time.perf_counter()
                result = anonymize(img, None, FaceBlurOptions(detector=detector))
                audit = result.audit
                row["seconds"] += time.perf_counter() - start
                row["images"] += 1
                written = result.written
                row["held back"] += not written
                found = result.detected
                changed = result.mask > 0
                row["faces"] += len(boxes)
                for index, box in enumerate(boxes):
                    hit = any(same_face(f.box, box) for f in found)
                    row["found"] += hit
                    row["covered"] += covered(changed, box)
                    row["leaked"] += written and not covered(changed, box)
                    if photo.turned and photo.turned[index]:
                        turned = rows[("turned away", detector)]
                        turned["faces"] += 1
                        turned["found"] += hit
                        turned["covered"] += covered(changed, box)
                row["false detections"] += sum(not any(same_face(f.box, b) for b in boxes + ignore) for f in found)
                away = changed & ~padded_mask(changed.shape, boxes + ignore)
                row["changed away"] += away.sum() / away.size
                if variant == "upright" and audit is not None:
                    distances[detector] += audit.distances
                    for face in found:
                        if not (face.confident and face.has_descriptor):
                            continue
                        person = next((p for b, p in zip(boxes, photo.people) if same_face(face.box, b)), None)
                        refs = [d for name, d in references.get(person, []) if name != photo.name]
                        if refs:
                            blurred = face_descriptor(result.image, face)
                            distances[detector + " vs other photos"].append(
                                min(float(np.linalg.norm(blurred - r)) for r in refs))
    print("| variant | detector | photos | faces | found | covered | leaked (written, not covered) | held back | "
          "false detections | changed away from faces | s per photo |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (cat, detector), r in sorted(rows.items(), key=lambda item: (item[0][0] == "turned away", item[0])):
        if cat == "turned away":
            print(f"| turned-away faces (all variants) | {detector} | | {int(r['faces'])} | {int(r['found'])} | "
                  f"{int(r['covered'])} | | | | | |")
            continue
        n = r["images"]
        print(f"| {cat} | {detector} | {int(n)} | {int(r['faces'])} | {int(r['found'])} | {int(r['covered'])} | "
              f"{int(r['leaked'])} | {int(r['held back'])} | {int(r['false detections'])} | "
              f"{100 * r['changed away'] / n:.2f}% | {r['seconds'] / n:.2f} |")
    print("\nidentity distance at the default strength (upright photos; a match is < 0.6):")
    for key, values in distances.items():
        if values:
            v = np.array(values)
            print(f"  {key}: {len(v)} faces, min {v.min():.3f}, 5th percentile {np.percentile(v, 5):.3f}, "
                  f"median {np.median(v):.3f}")


#: Another labelled face partly inside a crop is a cut face with at least this fraction of its box visible.
MIN_VISIBLE = 0.3
CUTS = ("top 45% off", "left half off", "right half off", "bottom 45% off")


def crop_window(box, cut: str, shape) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) window of an image of ``shape`` that cuts ``box`` as ``cut`` says."""
    height, width = shape[:2]
    left, top, right, bottom = box
    centre = round((left + right) / 2)
    if cut == "top 45% off":
        return 0, round(top + 0.45 * (bottom - top)), width, height
    if cut == "left half off":
        return centre, 0, width, height
    if cut == "right half off":
        return 0, 0, centre, height
    return 0, 0, width, round(bottom - 0.45 * (bottom - top))


def clip(box, window) -> tuple[int, int, int, int] | None:
    """``box`` clipped to ``window``, in the window's coordinates; None when nothing is left."""
    left, top = max(box[0], window[0]), max(box[1], window[1])
    right, bottom = min(box[2], window[2]), min(box[3], window[3])
    if right <= left or bottom <= top:
        return None
    return left - window[0], top - window[1], right - window[0], bottom - window[1]


def area(box) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def cut_crops(photo, image):
    """(cut, face index, crop, faces as (clipped box, cut?, label index), ignore boxes) for one photo."""
    height, width = image.shape[:2]
    for index, box in enumerate(photo.faces):
        if box[0] <= 0 or box[1] <= 0 or box[2] >= width or box[3] >= height:
            continue  # already cut by the frame
        for cut in CUTS:
            window = crop_window(box, cut, image.shape)
            crop = np.ascontiguousarray(image[window[1]:window[3], window[0]:window[2]])
            faces, ignore = [], [b for b in (clip(b, window) for b in photo.ignore) if b]
            for other, label in enumerate(photo.faces):
                clipped = clip(label, window)
                if clipped is None:
                    continue
                if other == index or area(clipped) < area(label):
                    if other == index or area(clipped) >= MIN_VISIBLE * area(label):
                        faces.append((clipped, True, other))
                    else:
                        ignore.append(clipped)
                else:
                    faces.append((clipped, False, other))
            yield cut, index, crop, faces, ignore


@contextlib.contextmanager
def edge_search(on: bool):
    """The edge search of :func:`p3m.privacy.faces.detect_faces` as it is (on), or finding nothing (off)."""
    saved = faces_module._edge_faces
    if not on:
        faces_module._edge_faces = lambda *args, **kwargs: []
    try:
        yield
    finally:
        faces_module._edge_faces = saved


def cut_by_frame(originals: dict[str, np.ndarray]) -> None:
    """Recall on faces cut by the frame, with the edge search on and off."""
    rows: dict[tuple, dict] = defaultdict(lambda: defaultdict(float))
    by_cut: dict[tuple, dict] = defaultdict(lambda: defaultdict(float))
    misses = []
    crops = [(photo.name, *c) for photo in PHOTOS for c in cut_crops(photo, originals[photo.name])]
    for edges in (True, False):
        with edge_search(edges):
            for name, cut, index, crop, faces, ignore in crops:
                for detector in DETECTORS:
                    key = (f"cut by the frame, edges {'on' if edges else 'off'}", detector)
                    row = rows[key]
                    start = time.perf_counter()
                    result = anonymize(crop, None, FaceBlurOptions(detector=detector))
                    row["seconds"] += time.perf_counter() - start
                    row["images"] += 1
                    written = result.written
                    row["held back"] += not written
                    found = [(f, clip(f.box, (0, 0, crop.shape[1], crop.shape[0]))) for f in result.detected]
                    changed = result.mask > 0
                    boxes = [b for b, _, _ in faces]
                    for box, is_cut, label in faces:
                        hit = any(c is not None and same_face(c, box) for _, c in found)
                        cover = covered(changed, box)
                        counts = [row, by_cut[(key, cut)]] if is_cut else [row]
                        for r in counts:
                            r["faces"] += 1
                            r["cut faces"] += is_cut
                            r["found"] += hit
                            r["covered"] += cover
                            r["leaked"] += written and not cover
                            r["cut found"] += is_cut and hit
                            r["cut covered"] += is_cut and cover
                            r["cut leaked"] += is_cut and written and not cover
                        if is_cut and (not hit or (written and not cover)):
                            misses.append((key, name, cut, label, index, box, crop.shape[:2], hit,
                                           core_changed(changed, box), result.status.value))
                    row["false detections"] += sum(c is None or not any(same_face(c, b) for b in boxes + ignore)
                                                   for _, c in found)
                    row["edge faces"] += sum(f.padding > 0 for f, _ in found)
                    away = changed & ~padded_mask(changed.shape, boxes + ignore)
                    row["changed away"] += away.sum() / away.size
    print(f"\ncut by the frame: {len(crops)} crops of {len({c[0] for c in crops})} photos (4 cuts of each labelled "
          "face not touching the border); 'edges off' = p3m.privacy.faces._edge_faces monkeypatched to find "
          "nothing, in this process only")
    print("| variant | detector | photos | faces | found | covered | leaked (written, not covered) | held back | "
          "false detections | changed away from faces | s per photo |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (variant, detector), r in rows.items():
        n = r["images"]
        print(f"| {variant} | {detector} | {int(n)} | {int(r['faces'])} | {int(r['found'])} | {int(r['covered'])} | "
              f"{int(r['leaked'])} | {int(r['held back'])} | {int(r['false detections'])} | "
              f"{100 * r['changed away'] / n:.2f}% | {r['seconds'] / n:.2f} |")
    print("\ncut faces only (the face cut on purpose, and others partly inside), by cut:")
    print("| edges | detector | cut | cut faces | found | covered | leaked |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for (variant, detector), r in rows.items():
        edges = variant.rsplit(" ", 1)[-1]
        for cut in CUTS:
            c = by_cut[((variant, detector), cut)]
            print(f"| {edges} | {detector} | {cut} | {int(c['cut faces'])} | {int(c['cut found'])} | "
                  f"{int(c['cut covered'])} | {int(c['cut leaked'])} |")
        print(f"| {edges} | {detector} | all | {int(r['cut faces'])} | {int(r['cut found'])} | "
              f"{int(r['cut covered'])} | {int(r['cut leaked'])} |")
    print("  detections from the edge search (face.padding > 0): "
          + ", ".join(f"{v} {d}: {int(r['edge faces'])}" for (v, d), r in rows.items()))
    print("\ncut faces missed, or written not covered (crop box = the labelled face clipped to the crop):")
    for (variant, detector), name, cut, label, index, box, shape, hit, cover, status in misses:
        which = "" if label == index else f" (another face, partly inside the crop that cuts face {index})"
        print(f"  {variant}, {detector}: {name} face {label}{which}, "
              f"{cut}, crop {shape[1]} x {shape[0]}, box {box}: {'found' if hit else 'MISSED'}, "
              f"{'covered' if cover >= 0.8 else 'NOT covered'} ({100 * cover:.0f}% of its middle changed), {status}")
    if not misses:
        print("  none")


def edge_cost(originals: dict[str, np.ndarray], repeats: int = 3) -> None:
    """Seconds of ``detect_faces`` per upright photo with the edge search on and off (interleaved, best of ``repeats``)."""
    print(f"\ndetect_faces per upright photo, edges on vs off ({len(PHOTOS)} photos, best of {repeats}, interleaved):")
    for detector in DETECTORS:
        best = {True: [], False: []}
        means = {True: [], False: []}
        for photo in PHOTOS:
            image = originals[photo.name]
            times = {True: [], False: []}
            for _ in range(repeats):
                for edges in (True, False):
                    times[edges].append(_timed(detect_faces, image, detector=detector, edges=edges))
            for edges in (True, False):
                best[edges].append(min(times[edges]))
                means[edges].append(np.mean(times[edges]))
        on, off = np.mean(best[True]), np.mean(best[False])
        print(f"  {detector}: edges on {on:.3f} s, off {off:.3f} s, ratio {on / off:.2f} "
              f"(means of all runs: {np.mean(means[True]):.3f} s vs {np.mean(means[False]):.3f} s); per photo on/off: "
              + ", ".join(f"{p.name} {a:.2f}/{b:.2f}" for p, a, b in zip(PHOTOS, best[True], best[False])))


def matte_integrity(photos: dict[str, Path]) -> None:
    """The upright photos anonymised with a matte: transition pixels changed (must be 0)."""
    from p3m.inference.default_engine import SegmentationMattingEngine

    engine = SegmentationMattingEngine()
    print("\nwith an alpha matte from the default engine (upright photos):")
    for detector in DETECTORS:
        changed = held = 0
        for photo in PHOTOS:
            image = read_image_file(photos[photo.name])
            (alpha,) = engine.predict([image])
            result = anonymize(image, alpha, FaceBlurOptions(detector=detector))
            held += not result.written
            if result.image is not None:
                changed += changed_transition_pixels(image, result.image, alpha)
        print(f"  {detector}: {len(PHOTOS)} photos, changed transition pixels {changed}, held back {held}")


def speed(photos: dict[str, Path]) -> None:
    from p3m.inference.compose import cover

    image = cover(read_image_file(photos["group"]), 1080, 1920)
    print("\ntime per 1920 x 1080 photo (the group photo scaled to cover), best of 3:")
    for detector in DETECTORS:
        options = FaceBlurOptions(detector=detector)
        detect = min(_timed(detect_faces, image, detector=detector) for _ in range(3))
        no_edges = min(_timed(detect_faces, image, detector=detector, edges=False) for _ in range(3))
        whole = min(_timed(anonymize, image, None, options) for _ in range(3))
        print(f"  {detector}: detection {detect:.2f} s ({no_edges:.2f} s without the edge search), "
              f"detect + blur + audit {whole:.2f} s")


def _timed(work, *args, **kwargs) -> float:
    start = time.perf_counter()
    work(*args, **kwargs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=p3m_home() / "sample_photos")
    parser.add_argument("--quick", action="store_true", help="upright, turned 90 and small (25 px) only")
    parser.add_argument("--cut-only", action="store_true", help="only the faces cut by the frame and the edge search's cost")
    args = parser.parse_args()
    photos = fetch_sample_photos(args.photos)
    originals = {p.name: read_image_file(photos[p.name]) for p in PHOTOS}
    if not args.cut_only:
        run(photos, args.quick)
    cut_by_frame(originals)
    edge_cost(originals)
    if not args.cut_only:
        matte_integrity(photos)
        speed(photos)


if __name__ == "__main__":
    main()
