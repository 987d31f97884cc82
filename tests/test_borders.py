"""A picture inside plain borders (a letterbox, a photo on a page): where it lies, and the
faces cut by its edge, found, covered and audited as faces cut by the frame are."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from p3m.privacy import borders
from p3m.privacy.borders import picture_box


def _framed(picture: np.ndarray, frame: tuple[int, int], at: tuple[int, int], colour: int, noise: int = 0,
            seed: int = 0) -> np.ndarray:
    """``picture`` on a plain ``frame`` (height, width) of ``colour`` (+- ``noise`` levels), its top-left at ``at``."""
    rng = np.random.default_rng(seed)
    out = np.clip(colour + rng.integers(-noise, noise + 1, (*frame, 3)), 0, 255).astype(np.uint8)
    out[at[0]:at[0] + picture.shape[0], at[1]:at[1] + picture.shape[1]] = picture
    return out


def test_the_picture_is_found_inside_plain_borders_on_the_sides_that_have_them():
    rng = np.random.default_rng(1)
    picture = rng.integers(0, 256, (120, 90, 3), dtype=np.uint8)
    # on a noisy grey page (a scan, a JPEG): every side
    assert picture_box(_framed(picture, (300, 400), (50, 200), 128, noise=6)) == ((200, 50, 290, 170),
                                                                                   (True, True, True, True))
    # pillarboxed: black bars left and right only
    pillar = np.concatenate([np.zeros((120, 30, 3), np.uint8), picture, np.zeros((120, 45, 3), np.uint8)], axis=1)
    assert picture_box(pillar) == ((30, 0, 120, 120), (True, False, True, False))
    # the picture is the frame: no border, nor a 2-px line at an edge
    assert picture_box(picture) is None
    lined = picture.copy()
    lined[:2] = 255
    assert picture_box(lined) is None
    # nothing but border: no picture
    assert picture_box(np.full((50, 60, 3), 200, np.uint8)) is None
    # a textured surround (a carpet, foliage) is no border
    assert picture_box(_framed(picture, (300, 400), (50, 200), 128, noise=30)) is None

def _pillarboxed_cut_face(sample_photos) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The sample photo obama2 cut through the face (40% of its width left), shrunk to a
    face 40 px wide, on a black 960 x 540 page; and the box of what is left of the face."""
    from p3m.io.images import read_image_file

    image = read_image_file(sample_photos["obama2"])
    part = np.ascontiguousarray(image[:, 331:])  # dlib's box of the face: x 171-438
    small = cv2.resize(part, None, fx=0.15, fy=0.15, interpolation=cv2.INTER_AREA)
    page = _framed(small, (540, 960), (180, 458), 0)
    return page, (458, 225, 478, 265)


def test_a_face_cut_by_the_pictures_edge_is_found_there_and_covered(face_models, sample_photos, monkeypatch):
    """The frame's own mirrored border mirrors the black page, not the face: dlib and
    BlazeFace miss the cut face; searched on the picture alone, BlazeFace finds it. It
    keeps no landmarks (found in the picture's mirror, not the frame's), counts as cut,
    and is covered with its head."""
    from p3m.privacy.audit import crosses_frame
    from p3m.privacy.blur import blur_faces
    from p3m.privacy.faces import detect_faces

    page, strip = _pillarboxed_cut_face(sample_photos)
    centre = ((strip[0] + strip[2]) // 2, (strip[1] + strip[3]) // 2)

    def at_strip(faces):
        return [f for f in faces if f.box[0] <= centre[0] <= f.box[2] and f.box[1] <= centre[1] <= f.box[3]]

    found = at_strip(detect_faces(page, detector="hog+blazeface"))
    assert len(found) == 1 and found[0].picture == (458, 180, 502, 360) and found[0].landmarks is None
    assert found[0].padding == 0 and crosses_frame(found[0], page.shape[:2])
    mask = blur_faces(page, faces=found, sigma_scale=0.12).mask
    assert mask[strip[1]:strip[3], strip[0]:strip[2]].mean() > 0.9
    assert not mask[:, :458].any()  # the black bar beyond the picture's edge is left black

    monkeypatch.setattr(borders, "picture_box", lambda image: None)
    assert at_strip(detect_faces(page, detector="hog+blazeface")) == []


def test_a_face_cut_by_the_pictures_edge_is_audited_inside_the_picture(face_models, sample_photos, monkeypatch):
    """Found by the picture's edge search, the cut face is a face cut by the picture,
    audited at boxes clipped to it (an attacker frames a face inside the picture, not
    over the black page): it stays within the margin at the strongest blur, and the page
    is held back with the reason a cut face gets. Without that search only MTCNN finds
    it, weakly, as a face inside the frame."""
    from p3m.privacy.anonymize import anonymize
    from p3m.privacy.audit import crosses_frame

    page, strip = _pillarboxed_cut_face(sample_photos)
    result = anonymize(page)
    assert result.status == "identifiable" and result.image is None and result.held_by_cut_face
    box = result.audit.nearest_box()
    assert box[0] <= strip[0] < strip[2] <= box[2]

    monkeypatch.setattr(borders, "picture_box", lambda image: None)
    (weak,) = [f for f in anonymize(page).detected if f.box[0] <= strip[2] and f.box[2] >= strip[0]]
    assert weak.source == "mtcnn" and weak.picture is None and not crosses_frame(weak, page.shape[:2])


def test_an_attacker_frames_a_face_cut_by_the_pictures_edge_inside_the_picture(monkeypatch):
    """The audit's attacker boxes for such a face are clipped to the picture, not to the
    frame: a detector run on the page frames what it sees of the face, not the bar."""
    from p3m.privacy import dlib_models
    from p3m.privacy.faces import Face, alignments

    fitted = []

    def predictor(image, rect):
        fitted.append((rect.left(), rect.top(), rect.right(), rect.bottom()))
        return object()

    monkeypatch.setattr(dlib_models, "shape_predictor", lambda: predictor)
    face = Face((40, 60, 90, 110), None, 0.7, "blazeface", picture=(60, 20, 200, 180))
    views = alignments(np.zeros((200, 240, 3), np.uint8), face)
    own, *attacker = fitted
    assert own == face.box and len(views) == 3 and len(attacker) == 2
    assert all(box[0] >= 60 and box[1] >= 20 and box[2] <= 200 and box[3] <= 180 for box in attacker)


def test_a_few_stray_pixels_in_a_long_line_end_the_border():
    """On a wide plain wall the top of a head is a small share of a row (1% here), but
    more than BORDER_STRAYS pixels: the border ends there, not further down the head."""
    wall = np.full((100, 2000, 3), 200, np.uint8)
    wall[30:, 990:1010] = 40  # the top of a head, 20 px wide
    wall[60:] = np.random.default_rng(3).integers(0, 256, (40, 2000, 3), dtype=np.uint8)
    assert picture_box(wall) == ((0, 30, 2000, 100), (False, True, False, False))


@pytest.mark.parametrize("colour", [0, 128, 255])
def test_a_wall_above_a_portrait_is_a_border_only_down_to_the_head(colour):
    """A plain wall is flat only where nothing stands in front of it: its rows end at the
    top of the head, so the 'picture' there still holds the whole person."""
    rng = np.random.default_rng(2)
    person = rng.integers(0, 256, (200, 80, 3), dtype=np.uint8)
    scene = _framed(person, (260, 300), (60, 110), colour, noise=3)
    scene[200:] = rng.integers(0, 256, (60, 300, 3), dtype=np.uint8)  # a floor, a table: not plain
    box, sides = picture_box(scene)
    assert sides == (False, True, False, False) and box == (0, 60, 300, 260)
