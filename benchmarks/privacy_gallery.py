"""Linkage by rank as well as distance: a gallery attack on anonymised photos.

An attacker holds other photos of the people (a gallery) and asks, for each face in an
anonymised photo, which of them it is. This benchmark runs ``p3m.privacy.anonymize``
(default options) on labelled probe photos and measures, per labelled face:

- **found**: a detection of the run is the same face as the label
  (:func:`p3m.privacy.faces.same_face`; detections clipped to the frame first);
- **covered**: at least 80% of the central half of the labelled box (eyes, nose, mouth)
  changed;
- **leaked**: its photo was written (not held back) and the face is not covered;
- **distance to the original**: dlib's 128-d descriptors of the face before and after
  anonymisation, both at the landmarks dlib's 68-point predictor fits in the labelled
  box of the original: the audit's measure (:mod:`p3m.privacy.audit`), but aligned by
  the label, not by p3m's own detection (p3m's audit distances of the photo are listed
  beside every face the attack links);
- **gallery attack**: the gallery's descriptors (each gallery photo's labelled face, its
  landmarks fitted in the labelled box); every identity ranked by its nearest gallery
  descriptor to (a) the original face and (b) the anonymised face of a written photo.
  Rank-1 identification is reported against chance (1 / identities in the gallery), and
  the share of anonymised faces within 0.6 (dlib's same-person threshold) of any gallery
  photo of the same person. For (b) the attacker is given the best alignment there is:
  the landmarks of the original face (``oracle``); a second column refits them on the
  anonymised photo, in the labelled box, as an attacker without the original would
  (``refit``). Faces without a person in the gallery (strangers in group photos) count
  for found / covered / leaked only;
- **control, face erased**: the original photo with the labelled box, grown by 30% on
  each side, filled with its mean colour, ranked the same way (oracle landmarks): the
  linkage left in the context (hair, ears, clothes, background, a same-session gallery),
  which no blur of the face removes; a rank-1 rate of the anonymised faces near this one
  is all a face blur can reach.

p3m's labelled set is ``benchmarks/data/gallery_set.json`` (labels and sources only);
``benchmarks/gallery_set.py`` assembles its folder from copies of the repositories it
names. The folder holds ``manifest.json``::

    {"photos": {"NAME": "relative/path.png", ...},        # every image, by name
     "sources": {"NAME": {"repo": ..., "path": ..., "commit": ..., "licence": ...}},
     "probes": [
       {"name": "N", "photo": "NAME",                      # a photo as published
        "faces": [{"box": [l, t, r, b], "person": "P" | null, "pose": "frontal" | "three-quarter" | "profile",
                   "tags": ["crowd", ...]}]},
       {"name": "N", "from": "PROBE", "cut": {"face": I, "how": "top 45% off"}},   # derived:
       {"name": "N", "from": "PROBE", "tiny": {"width": 28, "canvas": [W, H]}},    # see below
       {"name": "N", "montage": {"from": ["PROBE", ...], "width": 40, "canvas": [W, H]}}],
     "gallery": {"P": [{"photo": "NAME", "box": [l, t, r, b]}, ...]}}

Derived probes are made here, from a probe's image and labels:

- ``cut``: a crop that cuts face ``I`` by the frame (``top 45% off``: the crop starts at
  top + 0.45 x height; ``left half off`` / ``right half off``: it starts / ends at the
  face's horizontal centre; ``bottom 45% off``). Boxes are clipped to the crop; the face
  cut on purpose, and any other face partly inside with at least 30% of its box
  visible, is tagged ``cut``; a face with less is dropped (neither a hit nor a miss).
- ``tiny``: the photo shrunk so that its mean labelled face is ``width`` px wide, centred
  on a grey canvas (``W`` x ``H``); faces under 40 px are tagged ``tiny`` wherever they are.
- ``montage``: the first labelled face of each listed probe with its surroundings (the box
  grown by one face width on each side, two below), shrunk so the face is ``width`` px
  wide, laid out in a grid on a grey canvas: a synthetic crowd of known people (tagged
  ``crowd`` and ``montage``).

A gallery photo may not be a probe's photo (checked). Categories (rows of the table):
all faces; ``frontal``, ``three-quarter`` and ``profile`` (the label's pose); ``cut``,
``tiny`` (box narrower than 40 px), ``crowd`` (tags). Per-variant rows too: as published,
cut, tiny, montage. A face may sit in several rows. Every leaked face is listed, every
anonymised face identified at rank 1 or within 0.6 of its person's gallery, every label
no detection matched, every photo held back. The p3m that ran is fingerprinted before and
after (a change during the run shows as two different lines). Progress goes to stderr.

    python benchmarks/privacy_gallery.py /tmp/gallery [--workers 2] [--json results.json] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from machine import cpu_model  # benchmarks/ is on the path when a script in it runs
from privacy_recall import area, clip, crop_window

MATCH = 0.6          # dlib's same-person threshold
TINY = 40            # a face narrower than this (pixels) is tiny
MIN_VISIBLE = 0.3    # another face partly inside a cut crop counts when this much of its box is left
GREY = 128
VARIANTS = ("as published", "cut", "tiny", "montage")
CATEGORIES = ("all", "frontal", "three-quarter", "profile", "cut", "tiny", "crowd")


# -- the probes ----------------------------------------------------------------------------------------------------


def read_photo(folder: Path, manifest: dict, name: str) -> np.ndarray:
    from p3m.io.images import read_image_file

    return read_image_file(folder / manifest["photos"][name])



def face(label: dict, box, *tags: str) -> dict:
    """A copy of a face label with a new box and extra tags."""
    return {**label, "box": [int(v) for v in box], "tags": sorted(set(label.get("tags", [])) | set(tags))}


def make_cut(image, faces, spec):
    index, how = spec["face"], spec["how"]
    window = crop_window(faces[index]["box"], how, image.shape)
    crop = np.ascontiguousarray(image[window[1]:window[3], window[0]:window[2]])
    out = []
    for other, label in enumerate(faces):
        clipped = clip(label["box"], window)
        if clipped is None:
            continue
        if area(clipped) < area(label["box"]):
            if other == index or area(clipped) >= MIN_VISIBLE * area(label["box"]):
                out.append(face(label, clipped, "cut"))
        else:
            out.append(face(label, clipped))
    return crop, out


def place(canvas: np.ndarray, patch: np.ndarray, left: int, top: int) -> None:
    h, w = patch.shape[:2]
    canvas[top:top + h, left:left + w] = patch


def make_tiny(image, faces, spec):
    scale = spec["width"] / np.mean([f["box"][2] - f["box"][0] for f in faces])
    shrunk = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    width, height = spec.get("canvas", (960, 540))
    if shrunk.shape[0] > height or shrunk.shape[1] > width:
        raise ValueError("the shrunk photo does not fit its canvas")
    canvas = np.full((height, width, 3), GREY, np.uint8)
    top, left = (height - shrunk.shape[0]) // 2, (width - shrunk.shape[1]) // 2
    place(canvas, shrunk, left, top)
    return canvas, [face(f, [round(v * scale) + o for v, o in zip(f["box"], (left, top, left, top))]) for f in faces]


def make_montage(parts, spec):
    """``parts``: (image, face label) pairs; each face with its surroundings, in a grid."""
    width, height = spec.get("canvas", (1280, 720))
    size = spec["width"]
    tiles = []
    for image, label in parts:
        left, top, right, bottom = label["box"]
        fw = right - left
        window = (max(0, left - fw), max(0, top - fw), min(image.shape[1], right + fw), min(image.shape[0], bottom + 2 * fw))
        patch = image[window[1]:window[3], window[0]:window[2]]
        scale = size / fw
        patch = cv2.resize(patch, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        box = [round((v - o) * scale) for v, o in zip(label["box"], (window[0], window[1], window[0], window[1]))]
        tiles.append((patch, face(label, box, "crowd", "montage")))
    columns = int(np.ceil(np.sqrt(len(tiles) * width / height)))
    rows = int(np.ceil(len(tiles) / columns))
    cell_w, cell_h = width // columns, height // rows
    canvas = np.full((height, width, 3), GREY, np.uint8)
    out = []
    for i, (patch, label) in enumerate(tiles):
        row, col = divmod(i, columns)
        patch = patch[:cell_h, :cell_w]
        left = col * cell_w + (cell_w - patch.shape[1]) // 2
        top = row * cell_h + (cell_h - patch.shape[0]) // 2
        place(canvas, patch, left, top)
        b = label["box"]
        out.append({**label, "box": [b[0] + left, b[1] + top, min(b[2], patch.shape[1]) + left,
                                     min(b[3], patch.shape[0]) + top]})
    return canvas, out


def build_probe(folder: Path, manifest: dict, probe: dict):
    """(image, faces, variant) of one probe, derived ones made from their base probe."""
    by_name = {p["name"]: p for p in manifest["probes"]}
    if "montage" in probe:
        parts = []
        for name in probe["montage"]["from"]:
            image, faces, _ = build_probe(folder, manifest, by_name[name])
            parts.append((image, faces[0]))
        image, faces = make_montage(parts, probe["montage"])
        variant = "montage"
    elif "from" in probe:
        image, faces, _ = build_probe(folder, manifest, by_name[probe["from"]])
        if "cut" in probe:
            image, faces = make_cut(image, faces, probe["cut"])
            variant = "cut"
        else:
            image, faces = make_tiny(image, faces, probe["tiny"])
            variant = "tiny"
    else:
        image = read_photo(folder, manifest, probe["photo"])
        faces = [face(f, f["box"]) for f in probe["faces"]]
        variant = "as published"
    for f in faces:
        if f["box"][2] - f["box"][0] < TINY:
            f["tags"] = sorted(set(f["tags"]) | {"tiny"})
    return image, faces, variant


def base_photos(manifest: dict, probe: dict) -> set[str]:
    """The source photos a probe is made from."""
    by_name = {p["name"]: p for p in manifest["probes"]}
    if "montage" in probe:
        return set().union(*(base_photos(manifest, by_name[n]) for n in probe["montage"]["from"]))
    if "from" in probe:
        return base_photos(manifest, by_name[probe["from"]])
    return {probe["photo"]}


# -- the attack ----------------------------------------------------------------------------------------------------


def landmarks(image: np.ndarray, box):
    """dlib's 68 landmarks fitted in ``box``, as an attacker with the box would fit them."""
    import dlib

    from p3m.privacy import dlib_models

    return dlib_models.shape_predictor()(image, dlib.rectangle(*(int(v) for v in box)))


def descriptor(image: np.ndarray, shape) -> np.ndarray:
    from p3m.privacy import dlib_models

    return np.array(dlib_models.face_recognizer().compute_face_descriptor(np.ascontiguousarray(image), shape))


#: The control "face erased": the labelled box grown by this fraction of its size on each side, filled with its mean colour.
ERASE_GROW = 0.3


def erase(image: np.ndarray, box) -> np.ndarray:
    """``image`` with the face's box (grown by ERASE_GROW) filled with its mean colour: what is left to link is
    the context (hair, ears, clothes, background), which no blur of the face removes."""
    left, top, right, bottom = box
    gw, gh = ERASE_GROW * (right - left), ERASE_GROW * (bottom - top)
    height, width = image.shape[:2]
    x0, y0 = max(0, int(left - gw)), max(0, int(top - gh))
    x1, y1 = min(width, int(np.ceil(right + gw))), min(height, int(np.ceil(bottom + gh)))
    out = image.copy()
    out[y0:y1, x0:x1] = np.round(image[y0:y1, x0:x1].reshape(-1, 3).mean(axis=0)).astype(np.uint8)
    return out


def covered(changed: np.ndarray, box) -> float:
    """The share of the central half of ``box`` (a quarter in from each side) that changed."""
    left, top, right, bottom = box
    qw, qh = (right - left) / 4, (bottom - top) / 4
    core = changed[max(0, int(top + qh)):max(0, int(bottom - qh)), max(0, int(left + qw)):max(0, int(right - qw))]
    return float(core.mean()) if core.size else 0.0


def run_probe(folder: Path, manifest: dict, probe: dict, hold_unaudited: bool = False) -> dict:
    """Anonymise one probe (default options, or ``hold_unaudited``) and measure each labelled
    face (original and anonymised descriptors included)."""
    from p3m.privacy.anonymize import anonymize
    from p3m.privacy.faces import same_face

    image, faces, variant = build_probe(folder, manifest, probe)
    start = time.perf_counter()
    result = anonymize(image, hold_unaudited=hold_unaudited)
    seconds = time.perf_counter() - start
    height, width = image.shape[:2]
    detections = [clip(d.box, (0, 0, width, height)) for d in result.detected]
    changed = result.mask > 0
    records = []
    for label in faces:
        box = label["box"]
        shape = landmarks(image, box)
        record = {**label, "found": any(d is not None and same_face(d, box) for d in detections),
                  "covered_share": round(covered(changed, box), 4),
                  "original": descriptor(image, shape).tolist()}
        record["covered"] = record["covered_share"] >= 0.8
        record["leaked"] = result.written and not record["covered"]
        if result.image is not None:
            record["erased"] = descriptor(erase(image, box), shape).tolist()
            blurred = descriptor(result.image, shape)
            record["blurred"] = blurred.tolist()
            record["blurred_refit"] = descriptor(result.image, landmarks(result.image, box)).tolist()
            record["distance"] = float(np.linalg.norm(np.array(record["original"]) - blurred))
        records.append(record)
    audit = result.audit.distances if result.audit is not None else []
    return {"name": probe["name"], "variant": variant, "size": [width, height], "status": result.status.value,
            "audit_distances": [round(d, 4) for d in audit],
            "written": result.written, "seconds": round(seconds, 2), "sigma_scale": result.sigma_scale,
            "whole_heads": getattr(result, "whole_heads", getattr(result, "heads", None)),
            "detections": len(result.detected), "faces": records}


def gallery_descriptors(folder: Path, manifest: dict) -> dict[str, list[np.ndarray]]:
    out: dict[str, list[np.ndarray]] = defaultdict(list)
    for person, photos in manifest["gallery"].items():
        for entry in photos:
            image = read_photo(folder, manifest, entry["photo"])
            out[person].append(descriptor(image, landmarks(image, entry["box"])))
    return dict(out)


def ranking(vector, gallery: dict[str, list[np.ndarray]]) -> list[tuple[float, str]]:
    """Identities by their nearest gallery descriptor to ``vector``, nearest first."""
    vector = np.asarray(vector)
    return sorted((min(float(np.linalg.norm(vector - g)) for g in descs), person) for person, descs in gallery.items())


def attack(records: list[dict], gallery: dict[str, list[np.ndarray]]) -> None:
    """Adds to each face: its identity's rank and the nearest distances, for the original and the anonymised face."""
    for photo in records:
        for f in photo["faces"]:
            if f.get("person") not in gallery:
                continue
            for key in ("original", "blurred", "blurred_refit", "erased"):
                if key not in f:
                    continue
                ranks = ranking(f[key], gallery)
                f[f"{key}_rank"] = 1 + [p for _, p in ranks].index(f["person"])
                f[f"{key}_top"] = ranks[0][1]
                f[f"{key}_same_distance"] = dict((p, d) for d, p in ranks)[f["person"]]


# -- the report ----------------------------------------------------------------------------------------------------


def share(hits: int, total: int) -> str:
    return f"{hits}/{total} ({100 * hits / total:.0f}%)" if total else "-"


def row(label: str, photos: list[dict], faces: list[tuple[dict, dict]], chance: float) -> str:
    known = [f for _, f in faces if "original_rank" in f]
    written = [f for p, f in faces if p["written"]]
    known_written = [f for f in known if "blurred_rank" in f]
    distances = np.array([f["distance"] for f in written if "distance" in f])
    dist = f"{distances.min():.3f} / {np.percentile(distances, 5):.3f}" if distances.size else "-"
    return (f"| {label} | {len(photos)} | {len(faces)} | {sum(f['found'] for _, f in faces)} | "
            f"{sum(f['covered'] for _, f in faces)} | {sum(f['leaked'] for _, f in faces)} | "
            f"{sum(not p['written'] for p in photos)} | "
            f"{share(sum(f['original_rank'] == 1 for f in known), len(known))} | "
            f"{share(sum(f['blurred_rank'] == 1 for f in known_written), len(known_written))} | "
            f"{share(sum(f['blurred_refit_rank'] == 1 for f in known_written), len(known_written))} | "
            f"{share(sum(f['erased_rank'] == 1 for f in known_written), len(known_written))} | "
            f"{100 * chance:.1f}% | {dist} | "
            f"{share(sum(f['blurred_same_distance'] < MATCH for f in known_written), len(known_written))} |")


def report(records: list[dict], gallery: dict[str, list[np.ndarray]], manifest: dict) -> None:
    chance = 1 / len(gallery)
    probes_with_people = {f["person"] for p in records for f in p["faces"] if f.get("person") in gallery}
    print(f"gallery: {len(gallery)} identities, {sum(map(len, gallery.values()))} photos "
          f"({len(probes_with_people)} of them with probe faces; the rest are distractors); chance of rank-1 = "
          f"1/{len(gallery)} = {100 * chance:.1f}%")
    print(f"probes: {len(records)} photos, {sum(len(p['faces']) for p in records)} labelled faces, "
          f"{sum(f.get('person') in gallery for p in records for f in p['faces'])} of people in the gallery\n")
    print("rank-1 columns: faces of people in the gallery (original: all of them; anonymised: those in written "
          "photos). oracle = landmarks of the original face; refit = landmarks fitted on the anonymised photo. "
          "distance = original vs anonymised face, written photos, min / 5th percentile. within 0.6 = anonymised "
          "face within 0.6 of any gallery photo of the same person (oracle landmarks). face erased (control) = "
          f"the original photo with the labelled box grown by {ERASE_GROW:.0%} a side filled with its mean colour, "
          "oracle landmarks: the linkage left in the context (hair, ears, clothes, background), which no blur of "
          "the face can remove.\n")
    header = ("| {} | photos | faces | found | covered | leaked | held back | rank-1 original | rank-1 anonymised "
              "(oracle) | rank-1 anonymised (refit) | rank-1 face erased (control) | chance | distance to original "
              "min / 5th pct | within 0.6 of the gallery |")
    rule = "| --- " * 14 + "|"
    print(header.format("category"))
    print(rule)
    for category in CATEGORIES:
        faces = [(p, f) for p in records for f in p["faces"]
                 if category == "all" or f.get("pose") == category or category in f.get("tags", [])]
        photos = [p for p in records if any(q is p for q, _ in faces)]
        print(row(category, photos, faces, chance))
    print()
    print(header.format("variant"))
    print(rule)
    for variant in VARIANTS:
        photos = [p for p in records if p["variant"] == variant]
        print(row(variant, photos, [(p, f) for p in photos for f in p["faces"]], chance))
    statuses = defaultdict(int)
    for p in records:
        statuses[p["status"]] += 1
    seconds = [p["seconds"] for p in records]
    print(f"\nstatus: {dict(statuses)}; anonymize: {np.mean(seconds):.1f} s per photo (median {np.median(seconds):.1f}, "
          f"max {max(seconds):.1f}) on {cpu_model()}")

    print("\nleaked faces (written photo, centre of the box not covered):")
    listed = False
    for p in records:
        for f in p["faces"]:
            if f["leaked"]:
                listed = True
                print(f"  {p['name']} ({p['variant']}, {p['size'][0]} x {p['size'][1]}): box {f['box']}, "
                      f"{f.get('person') or 'stranger'}, pose {f.get('pose')}, tags {f.get('tags')}: "
                      f"{'found' if f['found'] else 'NOT found'}, {100 * f['covered_share']:.0f}% of its centre "
                      f"changed")
    if not listed:
        print("  none")
    print("\nanonymised faces identified at rank 1, or within 0.6 of their person's gallery:")
    listed = False
    for p in records:
        for f in p["faces"]:
            if "blurred_rank" not in f:
                continue
            if f["blurred_rank"] == 1 or f["blurred_refit_rank"] == 1 or f["blurred_same_distance"] < MATCH:
                listed = True
                print(f"  {p['name']} ({p['variant']}): box {f['box']}, {f['person']}, pose {f.get('pose')}, "
                      f"tags {f.get('tags')}: rank oracle {f['blurred_rank']} / refit {f['blurred_refit_rank']} "
                      f"(original {f['original_rank']}, face erased {f['erased_rank']}), distance to the gallery "
                      f"{f['blurred_same_distance']:.3f}, to the original {f['distance']:.3f} (p3m's own audit of "
                      f"the photo: {p['audit_distances']})")
    if not listed:
        print("  none")
    close = [(p, f) for p in records for f in p["faces"] if f.get("distance", MATCH) < MATCH]
    print(f"\nwritten faces under {MATCH} from their original at the label's box ({len(close)}):")
    for p, f in close:
        print(f"  {p['name']} ({p['variant']}): box {f['box']}, {f.get('person') or 'stranger'}, pose {f.get('pose')}, "
              f"tags {f.get('tags')}: {f['distance']:.3f} (p3m's own audit of the photo: {p['audit_distances']})")
    misses = [(p, f) for p in records for f in p["faces"] if not f["found"]]
    print(f"\nlabelled faces no detection matched ({len(misses)}; covered or held back, they did not leak):")
    for p, f in misses:
        print(f"  {p['name']} ({p['variant']}, {p['status']}): box {f['box']}, pose {f.get('pose')}, "
              f"tags {f.get('tags')}, {100 * f['covered_share']:.0f}% of its centre changed")
    held = [p for p in records if not p["written"]]
    print(f"\nheld back ({len(held)}): " + (", ".join(f"{p['name']} ({p['status']})" for p in held) or "none"))
    originals = [f for p in records for f in p["faces"] if "original_rank" in f and f["original_rank"] != 1]
    print(f"\noriginal faces the gallery attack misses at rank 1 ({len(originals)}; linkage is weak there before "
          "any blur): " + ", ".join(f"{p['name']} {f['person']} (rank {f['original_rank']})"
                                     for p in records for f in p["faces"] if f in originals))




def source_fingerprint() -> str:
    """Which p3m ran: the SHA-256 of its Python files and, inside a git work tree, the commit and whether src/ differs."""
    import hashlib
    import subprocess

    import p3m

    package = Path(p3m.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    line = f"p3m from {package}, sha256 of its .py files {digest.hexdigest()[:16]}"
    try:
        head = subprocess.run(["git", "-C", str(package), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(package), "status", "--porcelain", "--", "."], capture_output=True,
                               text=True, check=True).stdout.strip()
        line += f"; git {head}{' with uncommitted changes' if dirty else ', no uncommitted changes'} in it"
    except (OSError, subprocess.CalledProcessError):
        line += "; not in a git work tree"
    return line


def check(manifest: dict) -> None:
    """Gallery photos are no probe's photos; every probe's person is a name, or None."""
    probe_photos = set().union(*(base_photos(manifest, p) for p in manifest["probes"]))
    gallery_photos = {e["photo"] for photos in manifest["gallery"].values() for e in photos}
    if probe_photos & gallery_photos:
        raise SystemExit(f"photos both probe and gallery: {sorted(probe_photos & gallery_photos)}")
    names = [p["name"] for p in manifest["probes"]]
    if len(names) != len(set(names)):
        raise SystemExit("probe names repeat")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a folder with manifest.json")
    parser.add_argument("--workers", type=int, default=1, help="probes anonymised at once (processes)")
    parser.add_argument("--json", type=Path, help="write every face's measures here")
    parser.add_argument("--only", nargs="*", help="only these probes (by name)")
    parser.add_argument("--hold-unaudited", action="store_true",
                        help="anonymise with hold_unaudited (images with a blurred region the audit cannot check "
                        "are held back)")
    args = parser.parse_args()
    manifest = json.loads((args.folder / "manifest.json").read_text())
    check(manifest)
    probes = [p for p in manifest["probes"] if not args.only or p["name"] in args.only]
    print(source_fingerprint())
    print("options: " + ("hold_unaudited" if args.hold_unaudited else "default"))
    gallery = gallery_descriptors(args.folder, manifest)
    start = time.perf_counter()
    records = []
    with ProcessPoolExecutor(args.workers) if args.workers > 1 else contextlib.nullcontext() as pool:
        mapping = pool.map if pool is not None else map
        for record in mapping(run_probe, [args.folder] * len(probes), [manifest] * len(probes), probes,
                              [args.hold_unaudited] * len(probes)):
            records.append(record)
            print(f"[{len(records)}/{len(probes)}] {record['name']}: {record['status']}, {record['seconds']:.1f} s",
                  file=sys.stderr, flush=True)
    attack(records, gallery)
    report(records, gallery, manifest)
    print(f"\nwall time {time.perf_counter() - start:.0f} s with {args.workers} worker(s)")
    print(source_fingerprint())  # the same as at the start, or the source changed during the run
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
