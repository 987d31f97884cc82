"""The second face-detector family (BlazeFace + face mesh) beside dlib's HOG: decoding,
the union, rotations, regions for faces dlib cannot landmark, the post-blur check with
both families, and HOG alone (with a warning) when the face models are not fetched."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from skimage import data

from p3m.cli.main import main
from p3m.errors import CheckpointError
from p3m.privacy import anonymize, audit_pair
from p3m.privacy.blazeface import FULL_RANGE, SHORT_RANGE, BlazeFace, anchors, tiles, weighted_nms
from p3m.privacy.blur import blur_faces, face_mask
from p3m.privacy.faces import Face, clipped, detect_faces, detector_note, resolve_detector, same_face, turn_points, unturn_points

pytest.importorskip("dlib")


# --- decoding and geometry, no models needed ---------------------------------------

def test_anchors_follow_mediapipes_layouts():
    short, full = anchors(SHORT_RANGE), anchors(FULL_RANGE)
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    assert np.allclose(short[0], short[1]) and np.allclose(short[0], [0.5 / 16, 0.5 / 16])  # 2 per 16x16 cell
    assert np.allclose(short[512:518], [0.5 / 8, 0.5 / 8])  # the three stride-16 layers share one 8x8 grid, 6 each
    assert np.allclose(full[1], [1.5 / 48, 0.5 / 48])  # 1 per 48x48 cell, row by row


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_points_found_in_a_turned_image_map_back_to_the_same_pixels(turns):
    rng = np.random.default_rng(turns)
    image = rng.integers(0, 255, (37, 52, 3), dtype=np.uint8)
    turned = np.rot90(image, turns)
    ys, xs = rng.integers(0, turned.shape[0], 20), rng.integers(0, turned.shape[1], 20)
    back = np.round(unturn_points(np.stack([xs, ys], 1), turns, image.shape[:2])).astype(int)
    assert np.array_equal(turned[ys, xs], image[back[:, 1], back[:, 0]])


def test_weighted_suppression_averages_overlapping_boxes_and_keeps_others():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    points = np.zeros((3, 6, 2), np.float32)
    kept = weighted_nms(boxes, points, np.array([0.9, 0.6, 0.7]))
    assert len(kept) == 2
    assert np.allclose(kept[0][0], (boxes[0] * 0.9 + boxes[1] * 0.6) / 1.5) and kept[0][2] == pytest.approx(0.9)
    assert np.allclose(kept[1][0], boxes[2])


def test_tiles_cover_the_image_with_overlap():
    windows = tiles(1080, 1920, 384)
    covered = np.zeros((1080, 1920), int)
    for left, top, right, bottom in windows:
        assert right - left == 384 and bottom - top == 384
        covered[top:bottom, left:right] += 1
    assert covered.min() >= 1 and covered[192:-192, 192:-192].min() >= 2
    assert tiles(300, 200, 384) == []


def test_the_command_line_offers_exactly_the_detectors_the_library_knows():
    from p3m.cli.main import build_parser
    from p3m.privacy.faces import DETECTORS

    anonymize = build_parser()._subparsers._group_actions[0].choices["anonymize"]
    (flag,) = [a for a in anonymize._actions if a.dest == "detector"]
    assert flag.metavar == "{" + ",".join(DETECTORS) + "}"


def test_one_face_by_overlap_or_centre():
    assert same_face((0, 0, 10, 10), (2, 2, 12, 12))
    assert same_face((0, 0, 100, 100), (40, 40, 60, 60))  # one inside the other
    assert not same_face((0, 0, 10, 10), (9, 9, 30, 30))


def test_regions_without_landmarks_come_from_the_mesh_or_an_ellipse_and_cover_the_head():
    from p3m.privacy.blur import _outline_mask, head_mask

    shape = (300, 300)
    ring = np.array([(150 + 30 * np.cos(t), 150 + 40 * np.sin(t)) for t in np.linspace(0, 2 * np.pi, 40)])
    face = Face((120, 110, 180, 190), None, 0.9, "blazeface", mesh=ring)
    meshed = _outline_mask(face, shape, 0.3)
    assert meshed[150, 150] and meshed[150, 181] and not meshed[150, 190] and not meshed[10, 10]
    ellipse = _outline_mask(Face((120, 110, 180, 190), None, 0.9, "blazeface"), shape, 0.3)
    assert ellipse[150, 150] and ellipse[105, 150]  # reaches above the box (forehead)
    assert not ellipse[150, 80] and not ellipse[245, 150]
    # without its own landmarks (a profile, a three-quarter view) a face gets its whole head covered
    head = head_mask(face, shape)
    assert (face_mask(face, shape) == (meshed | head)).all()
    assert head[150, 195] and head[75, 150] and not head[250, 150]  # ears and hair, not the neck below
    # a face with landmarks keeps its outline, unless asked for the head (the blur's last step)
    landmarked = Face((120, 110, 180, 190), np.array([(130 + i % 5 * 10, 130 + i // 5 * 8) for i in range(68)]))
    assert not face_mask(landmarked, shape)[150, 195] and face_mask(landmarked, shape, head=True)[150, 195]


def test_without_the_face_models_auto_is_hog_alone_and_says_recall_is_reduced():
    assert resolve_detector("auto") == "hog"
    assert "recall is reduced" in detector_note("auto") and "p3m weights fetch faces" in detector_note("auto")
    with pytest.raises(CheckpointError, match="p3m weights fetch faces"):
        BlazeFace(SHORT_RANGE)


def test_anonymize_without_the_face_models_still_works_and_warns(tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "a.png"), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    assert main(["anonymize", str(tmp_path / "a.png"), "-o", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "face detection: hog" in err and "recall is reduced" in err
    assert (tmp_path / "out" / "blurred_image" / "a.png").is_file()


# --- with the face models (fetched once from the mediapipe wheel) -------------------

def _tilted(image: np.ndarray, degrees: float) -> np.ndarray:
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (width, height), borderValue=(128, 128, 128))


def _core_blurred(before: np.ndarray, after: np.ndarray, centre: tuple[int, int], radius: int) -> float:
    x, y = centre
    changed = (before != after).any(axis=2)
    return changed[y - radius:y + radius, x - radius:x + radius].mean()


@pytest.mark.slow
def test_auto_detects_with_both_families(face_models):
    astronaut = data.astronaut()
    assert resolve_detector("auto") == "hog+blazeface+mtcnn" and detector_note("auto") is None
    faces = detect_faces(astronaut)
    face = next(f for f in faces if f.source == "hog" and f.score > 0.5)
    assert face.confirmed  # BlazeFace found the same face
    # BlazeFace's weak hit on the mission badge is rejected by the face mesh's own classifier
    assert all(f.source == "hog" for f in faces)


@pytest.mark.slow
def test_a_tilted_face_beside_a_frontal_one_is_blurred_too(face_models):
    """HOG alone finds the frontal face only; the tilted one is covered only as the head
    of a second person in the silhouette (people without a found face). With BlazeFace,
    the tilted face is found and blurred from its mesh."""
    astronaut = data.astronaut()
    photo = np.concatenate([astronaut, _tilted(astronaut, 60)], axis=1)  # 1024 x 512
    matrix = cv2.getRotationMatrix2D((256, 256), 60, 1.0)  # her face (centre 220, 120), turned in the right half
    tilted_centre = tuple(int(v) for v in matrix @ np.array([220, 120, 1.0]) + [512, 0])

    hog_only = anonymize(photo, detector="hog")
    assert hog_only.status == "ok" and _core_blurred(photo, hog_only.image, (220, 120), 15) > 0.9
    assert hog_only.people == 1 and _core_blurred(photo, hog_only.image, tilted_centre, 15) > 0.9  # her head

    around = (tilted_centre[0] - 40, tilted_centre[1] - 40, tilted_centre[0] + 40, tilted_centre[1] + 40)
    upright_only = [f for f in detect_faces(photo, rotations=(0,)) if same_face(f.box, around)]
    assert len(upright_only) == 1 and upright_only[0].source == "blazeface"
    assert upright_only[0].landmarks is None and upright_only[0].mesh is not None  # tilted beyond dlib's landmarks

    both = anonymize(photo, detector="auto")  # BlazeFace's own face sends the photo round the turns too
    tilted = [f for f in both.detected if same_face(f.box, around)]
    assert len(tilted) == 1 and tilted[0].confirmed and tilted[0].rotation == 3  # 60 degrees is -30 turned
    assert _core_blurred(photo, both.image, tilted_centre, 15) > 0.9
    assert _core_blurred(photo, both.image, (220, 120), 15) > 0.9


@pytest.mark.slow
def test_a_photo_on_its_side_is_searched_turned(face_models):
    turned = np.ascontiguousarray(np.rot90(data.astronaut(), 1))  # the face now near the left edge, lying
    assert detect_faces(turned, detector="hog", rotations=(0,)) == []
    faces = [f for f in detect_faces(turned, detector="hog") if f.score > 0.5]
    assert len(faces) == 1 and faces[0].rotation == 3  # found after turning it back upright
    left, top, right, bottom = faces[0].box
    assert 70 <= left and right <= 175 and 240 <= top and bottom <= 345  # her face, in the turned photo's pixels
    result = anonymize(turned, detector="hog")
    audit = audit_pair(turned, result.image, faces=result.detected, detector="hog")
    assert audit.redetected == 0 and audit.identity_matches == 0 and audit.distances


@pytest.mark.slow
def test_a_small_face_is_found_by_blazeface_only(face_models):
    small = cv2.resize(data.astronaut(), (112, 112), interpolation=cv2.INTER_AREA)  # her face about 22 px wide
    frame = np.full((480, 640, 3), 128, np.uint8)
    frame[200:312, 300:412] = small
    assert detect_faces(frame, detector="hog") == []
    faces = detect_faces(frame)
    assert len(faces) == 1 and faces[0].source == "blazeface" and faces[0].width < 40
    result = anonymize(frame)
    assert result.status == "ok" and _core_blurred(frame, result.image, (300 + 48, 200 + 26), 4) > 0.9


def _holds(box: tuple, point: tuple[int, int]) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


@pytest.mark.slow
@pytest.mark.parametrize("rows, columns, centre", [
    (slice(120, None), slice(None), (225, 30)),   # the top 44% of her face cut off
    (slice(None), slice(230, None), (20, 125)),   # cut down the middle: one eye, half the mouth
], ids=["top", "left"])
def test_a_face_cut_by_the_frame_is_found_blurred_and_held_back_while_close(face_models, rows, columns, centre):
    """Found in the mirrored border, blurred up to her whole head; at the box an
    attacker's detector draws inside the frame, dlib's chip is mostly the frame's edge
    and stays within the margin of her, so the photo is held back, saying why."""
    image = np.ascontiguousarray(data.astronaut()[rows, columns])
    assert not any(_holds(f.box, centre) for f in detect_faces(image, edges=False)), "missed by the plain search"
    cut = [f for f in detect_faces(image) if _holds(f.box, centre)]
    assert len(cut) == 1 and cut[0].padding > 0  # found in the mirrored border, once (not its mirror image too)
    result = anonymize(image)
    assert result.mask[centre[1], centre[0]] and result.whole_heads  # blurred, then her whole head
    assert result.status == "identifiable" and result.image is None and result.audit.nearest() < 0.65
    assert "cut by the frame" in result.reason
    left, top, right, bottom = clipped(cut[0].box, image.shape[1], image.shape[0])  # it reaches beyond the frame
    assert f"the face at x {left}-{right}, y {top}-{bottom} is" in result.reason  # where it is in the photo


@pytest.mark.slow
def test_a_face_cut_by_the_frame_is_written_only_unlinkable_where_an_attacker_frames_it(face_models, sample_photos):
    """Obama's face cut by the left edge (the labelled box, clipped by the frame): written,
    and at dlib's landmarks fitted in that box, as an attacker's detector would frame it,
    his blurred face is at least 0.6 from his own."""
    import dlib

    from p3m.io.images import read_image_file
    from p3m.privacy import dlib_models
    from p3m.privacy.sample_photos import PHOTOS

    label = next(p for p in PHOTOS if p.name == "obama-cut-left").faces[0]
    image = read_image_file(sample_photos["obama-cut-left"])
    assert label[0] == 0  # cut by the frame
    result = anonymize(image)
    assert result.status == "ok"
    shape = dlib_models.shape_predictor()(image, dlib.rectangle(*label))
    before, after = (np.array(dlib_models.face_recognizer().compute_face_descriptor(i, shape))
                     for i in (image, result.image))
    assert np.linalg.norm(before - after) >= 0.6


@pytest.mark.slow
def test_faces_near_the_edge_are_not_doubled_by_their_mirror_images(face_models, sample_photos):
    from p3m.io.images import read_image_file

    for name in ("obama-cut-left", "obama-cut-right", "biden"):
        image = read_image_file(sample_photos[name])
        (plain,) = detect_faces(image, detector="hog+blazeface", edges=False)
        assert len(detect_faces(image, detector="hog+blazeface")) == 1, name
        found = detect_faces(image)  # MTCNN searches the mirrored border too
        assert sum(same_face(f.box, plain.box) for f in found) == 1 and not any(f.padding for f in found), name


@pytest.mark.slow
def test_the_post_blur_check_uses_blazeface_too(face_models):
    astronaut = data.astronaut()
    faces = [f for f in detect_faces(astronaut) if f.score > 0.5]
    faint = blur_faces(astronaut, faces=faces, sigma_scale=0.01)
    assert audit_pair(astronaut, faint.image, faces=faces, detector="blazeface").redetected == 1
    default = anonymize(astronaut, faces=faces)
    assert audit_pair(astronaut, default.image, faces=faces, detector="blazeface").redetected == 0


@pytest.mark.slow
def test_anonymize_reports_the_detector_it_used(face_models, tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "a.png"), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    assert main(["anonymize", str(tmp_path / "a.png"), "-o", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "face detection: hog+blazeface+mtcnn" in err and "recall is reduced" not in err
    assert json.loads((tmp_path / "out" / "report.json").read_text())["detector"] == "hog+blazeface+mtcnn"


@pytest.mark.slow
def test_every_labelled_face_of_the_group_photo_is_found_upright_and_turned(face_models, sample_photos):
    from p3m.io.images import read_image_file
    from p3m.privacy.sample_photos import PHOTOS

    group = next(p for p in PHOTOS if p.name == "group")
    image = read_image_file(sample_photos["group"])
    faces = detect_faces(image)
    assert all(any(same_face(f.box, label) for f in faces) for label in group.faces)
    assert sum(f.confirmed for f in faces) == len(group.faces)  # each found by both families
    upside_down = np.ascontiguousarray(np.rot90(image, 2))
    found = detect_faces(upside_down)
    assert found and {f.rotation for f in found} == {2}  # nothing upright, all after turning it back
    assert len(found) >= len(group.faces) - 1


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_turning_points_and_back_is_the_identity(turns):
    from p3m.privacy.faces import turn_points

    shape = (37, 52)
    points = np.array([[0, 0], [51, 36], [10, 20], [51, 0]], float)
    image = np.arange(37 * 52).reshape(shape)
    turned = turn_points(points, turns, shape).astype(int)
    assert np.array_equal(np.rot90(image, turns)[turned[:, 1], turned[:, 0]], image[[0, 36, 20, 0], [0, 51, 10, 51]])
    assert np.allclose(unturn_points(turn_points(points, turns, shape), turns, shape), points)


def test_a_face_found_turned_gets_its_forehead_above_its_own_brows():
    upright = np.zeros((68, 2), np.int32)
    upright[0:17] = [(40 + 5 * i, 100 + (8 - abs(8 - i)) * 3) for i in range(17)]  # a jaw, chin at the bottom
    upright[17:27] = [(45 + 7 * i, 60) for i in range(10)]  # brows
    shape = (160, 200)
    flipped = Face((40, 60, 121, 125), unturn_points(upright, 2, shape).astype(np.int32), 1.0, rotation=2)
    mask = face_mask(flipped, shape)  # the photo is upside down: the forehead lies below the brows
    brows_y, chin_y, x = 160 - 1 - 60, 160 - 1 - 124, 200 - 1 - 80
    assert mask[brows_y + 8, x] and mask[brows_y + 15, x]  # forehead, beyond the brows away from the chin
    assert not mask[chin_y - 5, x]  # nothing beyond the chin


def _shrunk_copies(image: np.ndarray, box: tuple, widths: list[int]) -> tuple[np.ndarray, list[tuple]]:
    """Copies of ``image`` shrunk so that the face in ``box`` is each of ``widths`` px, side
    by side on a grey canvas; and where each face lies."""
    canvas = np.full((640, 960, 3), 128, np.uint8)
    x, boxes = 40, []
    for width in widths:
        scale = width / (box[2] - box[0])
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        canvas[100:100 + small.shape[0], x:x + small.shape[1]] = small
        boxes.append(tuple(round(v * scale) + o for v, o in zip(box, (x, 100, x, 100))))
        x += small.shape[1] + 20
    return canvas, boxes


@pytest.mark.slow
def test_where_a_small_face_is_found_smaller_ones_are_looked_for(face_models, sample_photos, monkeypatch):
    """A 16 px face beside a 50 px one (people in the background of a group): the usual
    tiles show it to the network at 8 px and miss it; the fine tiles, searched because a
    small face was found, find it, and it is blurred."""
    import p3m.privacy.faces as faces
    from p3m.io.images import read_image_file
    from p3m.privacy.sample_photos import PHOTOS

    obama = next(p for p in PHOTOS if p.name == "obama")
    photo, (near, far) = _shrunk_copies(read_image_file(sample_photos["obama"]), obama.faces[0], [50, 16])
    found = detect_faces(photo)
    assert any(same_face(f.box, near) for f in found) and any(same_face(f.box, far) for f in found)
    result = anonymize(photo)
    assert result.status == "ok" and all(result.mask[(b[1] + b[3]) // 2, (b[0] + b[2]) // 2] for b in (near, far))
    turned = np.ascontiguousarray(np.rot90(photo, 1))  # the photo on its side: searched turned back, fine tiles too
    centre = turn_points(np.array([[(far[0] + far[2]) / 2, (far[1] + far[3]) / 2]]), 1, photo.shape[:2])[0]
    result = anonymize(turned)
    assert result.status == "ok" and result.mask[round(centre[1]), round(centre[0])]
    monkeypatch.setattr(faces, "SMALL_FACE_HINT", 0)  # no fine tiles (and no MTCNN, which finds it too)
    assert not any(same_face(f.box, far) for f in detect_faces(photo, detector="hog+blazeface"))


def test_the_border_search_keeps_cut_faces_and_drops_mirror_images(monkeypatch):
    """What the mirrored border's search keeps (boxes in the frame's coordinates, frame
    250 x 250): a face cut by the bottom edge with 39% of it in the frame (its centre 7 px
    below the edge, as in lfw_sharon of the gallery set: dropped by the old rule that its
    centre lie within a tenth of its size of the frame) and one cut by the left edge; not
    the mirror image of a face inside the frame (found by this search, or before it by
    the plain search), a face wholly inside, or a sliver (20% in the frame)."""
    import p3m.privacy.faces as faces

    pad = 75
    plain = Face((10, 40, 70, 100), None, 0.9, "blazeface")  # found by the plain search, not by this one
    boxes = {"cut": (0, 226, 62, 288), "cut left": (-20, 150, 40, 210), "inside": (150, 200, 210, 245),
             "mirror": (140, 220, 220, 300),  # the inside face's mirror image, drawn large: 37% in the frame
             "mirror left": (-50, 30, 30, 110),  # the plain face's, 37% in the frame
             "sliver": (100, 238, 160, 298)}

    def found(padded, known, ring=None, **search):
        assert padded.shape[:2] == (250 + 2 * pad, 250 + 2 * pad)
        return [Face(tuple(v + pad for v in box), None, 0.9, "blazeface") for box in boxes.values()], set()

    monkeypatch.setattr(faces, "_blazeface_faces", found)
    kept = faces._edge_faces(np.zeros((250, 250, 3), np.uint8), ["hog", "blazeface"], 1, [plain])
    assert [face.box for face in kept] == [boxes["cut"], boxes["cut left"]] and kept[0].padding == pad
    alone = faces._edge_faces(np.zeros((250, 250, 3), np.uint8), ["hog", "blazeface"], 1)
    assert boxes["mirror left"] in [face.box for face in alone]  # without the plain face nothing says it is a mirror


def test_the_border_reflects_boxes_as_opencv_reflects_pixels():
    """A box of the mirrored border maps back onto the pixels the border copied
    (cv2.BORDER_REFLECT_101), on every side."""
    import p3m.privacy.faces as faces

    height, width, pad = 6, 8, 4
    frame = np.arange(height * width).reshape(height, width)
    padded = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    for box in [(-4, 1, -1, 3), (8, 2, 11, 5), (2, -3, 5, -1), (1, 6, 4, 9), (-3, -3, -1, -1)]:
        left, top, right, bottom = faces._reflected(box, width, height)
        copied = padded[box[1] + pad:box[3] + pad, box[0] + pad:box[2] + pad]
        assert np.array_equal(np.sort(copied, axis=None), np.sort(frame[top:bottom, left:right], axis=None)), box
