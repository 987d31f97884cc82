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

    python benchmarks/privacy_recall.py [--photos DIR] [--quick]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from p3m.io.images import read_image_file
from p3m.options import FaceBlurOptions
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
    left, top, right, bottom = box
    qw, qh = (right - left) / 4, (bottom - top) / 4
    core = changed[max(0, int(top + qh)):int(bottom - qh), max(0, int(left + qw)):int(right - qw)]
    return core.size > 0 and core.mean() >= 0.8


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
        whole = min(_timed(anonymize, image, None, options) for _ in range(3))
        print(f"  {detector}: detection {detect:.2f} s, detect + blur + audit {whole:.2f} s")


def _timed(work, *args, **kwargs) -> float:
    start = time.perf_counter()
    work(*args, **kwargs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=p3m_home() / "sample_photos")
    parser.add_argument("--quick", action="store_true", help="upright, turned 90 and small (25 px) only")
    args = parser.parse_args()
    photos = fetch_sample_photos(args.photos)
    run(photos, args.quick)
    matte_integrity(photos)
    speed(photos)


if __name__ == "__main__":
    main()
