"""MTCNN, the third detector family: its weights read without PyTorch or code, its
numpy networks equal to PyTorch's layers, and what it adds to the face search."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from p3m.errors import CheckpointError
from p3m.privacy import mtcnn
from p3m.weights.default_model import MTCNN_MODELS
from p3m.weights.torch_pickle import read_legacy_state_dict


@pytest.fixture()
def weights(face_models):
    return mtcnn.networks()


def test_the_weights_read_without_torch_are_torchs(weights):
    for model, state in zip(MTCNN_MODELS, weights):
        expected = torch.load(model.path(), weights_only=True)
        assert list(state) == list(expected)
        assert all(np.array_equal(state[name], tensor.numpy()) for name, tensor in expected.items())


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_legacy_file_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    torch.save({"conv1.weight": torch.ones(2), "x": _RunsCode(marker)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="refused: the file names"):
        read_legacy_state_dict(path)
    assert not marker.exists()
    plain = tmp_path / "plain.pt"
    torch.save({"w": torch.arange(6.0).reshape(2, 3).t()}, plain, _use_new_zipfile_serialization=False)  # strided
    assert np.array_equal(read_legacy_state_dict(plain)["w"], np.arange(6.0).reshape(2, 3).T)
    modern = tmp_path / "modern.pt"
    torch.save({"w": torch.ones(2)}, modern)  # the zip format: not what MTCNN's files are
    with pytest.raises(CheckpointError, match="not a readable legacy"):
        read_legacy_state_dict(modern)
    with pytest.raises(CheckpointError):
        read_legacy_state_dict(_truncated(plain, tmp_path))


def _truncated(path, folder):
    short = folder / "short.pt"
    short.write_bytes(path.read_bytes()[:-8])
    return short


def _torch_block(x, net, name, pool=None):
    x = F.prelu(F.conv2d(x, torch.from_numpy(net[f"conv{name}.weight"]), torch.from_numpy(net[f"conv{name}.bias"])),
                torch.from_numpy(net[f"prelu{name}.weight"]))
    return F.max_pool2d(x, pool[0], pool[1], ceil_mode=True) if pool else x


def _linear(x, net, name):
    return F.linear(x, torch.from_numpy(net[f"{name}.weight"]), torch.from_numpy(net[f"{name}.bias"]))


def test_the_numpy_networks_compute_what_pytorchs_layers_do(weights):
    """facenet-pytorch's P-, R- and O-Net written with PyTorch's own layers (ceil-mode
    pooling, the permute before the dense layers) against the numpy port, on odd sizes."""
    pnet, rnet, onet = weights
    rng = np.random.default_rng(0)
    image = rng.uniform(-1, 1, (37, 50, 3)).astype(np.float32)
    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    x = _torch_block(_torch_block(_torch_block(x, pnet, "1", (2, 2)), pnet, "2"), pnet, "3")
    reg = F.conv2d(x, torch.from_numpy(pnet["conv4_2.weight"]), torch.from_numpy(pnet["conv4_2.bias"]))
    prob = F.softmax(F.conv2d(x, torch.from_numpy(pnet["conv4_1.weight"]), torch.from_numpy(pnet["conv4_1.bias"])), 1)
    got_reg, got_prob = mtcnn._pnet(pnet, image)
    np.testing.assert_allclose(got_reg, reg[0].permute(1, 2, 0).numpy(), atol=1e-4)
    np.testing.assert_allclose(got_prob, prob[0, 1].numpy(), atol=1e-5)

    crops = rng.uniform(-1, 1, (5, 24, 24, 3)).astype(np.float32)
    x = torch.from_numpy(crops).permute(0, 3, 1, 2)
    x = _torch_block(_torch_block(_torch_block(x, rnet, "1", (3, 2)), rnet, "2", (3, 2)), rnet, "3")
    x = F.prelu(_linear(x.permute(0, 3, 2, 1).reshape(5, -1), rnet, "dense4"), torch.from_numpy(rnet["prelu4.weight"]))
    got_reg, got_prob = mtcnn._rnet(rnet, crops)
    np.testing.assert_allclose(got_reg, _linear(x, rnet, "dense5_2").numpy(), atol=1e-4)
    np.testing.assert_allclose(got_prob, F.softmax(_linear(x, rnet, "dense5_1"), 1)[:, 1].numpy(), atol=1e-5)

    crops = rng.uniform(-1, 1, (3, 48, 48, 3)).astype(np.float32)
    x = torch.from_numpy(crops).permute(0, 3, 1, 2)
    for name, pool in (("1", (3, 2)), ("2", (3, 2)), ("3", (2, 2)), ("4", None)):
        x = _torch_block(x, onet, name, pool)
    x = F.prelu(_linear(x.permute(0, 3, 2, 1).reshape(3, -1), onet, "dense5"), torch.from_numpy(onet["prelu5.weight"]))
    got_reg, got_points, got_prob = mtcnn._onet(onet, crops)
    np.testing.assert_allclose(got_reg, _linear(x, onet, "dense6_2").numpy(), atol=1e-4)
    np.testing.assert_allclose(got_points, _linear(x, onet, "dense6_3").numpy(), atol=1e-4)
    np.testing.assert_allclose(got_prob, F.softmax(_linear(x, onet, "dense6_1"), 1)[:, 1].numpy(), atol=1e-5)


def test_area_resampling_is_pytorchs_for_windows_and_the_whole_image():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (61, 83, 3)).astype(np.uint8)
    table = mtcnn._AreaTable(image)

    def reference(window, height, width):
        x = torch.from_numpy(window.astype(np.float32)).permute(2, 0, 1)[None]
        return F.interpolate(x, size=(height, width), mode="area")[0].permute(1, 2, 0).numpy()

    np.testing.assert_allclose(table.whole(29, 50), reference(image, 29, 50), atol=1e-3)
    windows = [(0, 61, 0, 83), (3, 10, 5, 30), (10, 11, 20, 21), (40, 61, 60, 83)]  # down, up and 1 x 1
    for size in (24, 48):
        got = table.resize((np.array([w[0] for w in windows]), np.array([w[1] for w in windows])),
                           (np.array([w[2] for w in windows]), np.array([w[3] for w in windows])), size, size)
        for crop, (top, bottom, left, right) in zip(got, windows):
            np.testing.assert_allclose(crop, reference(image[top:bottom, left:right], size, size), atol=1e-3)


def test_suppression_keeps_the_best_of_overlapping_boxes_by_either_rule():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [2, 2, 6, 6]], np.float32)
    scores = np.array([0.9, 0.95, 0.8, 0.7], np.float32)
    assert mtcnn._nms(boxes, scores, 0.5).tolist() == [1, 2, 3]  # the small box overlaps little by IoU
    assert mtcnn._nms(boxes, scores, 0.7, by_min=True).tolist() == [1, 2]  # but lies inside: gone by min


@pytest.mark.slow
def test_a_face_only_mtcnn_finds_is_kept_and_covered_with_its_head(face_models, sample_photos):
    """The group photo cut down the middle of the left face (as the gallery set's
    if_t1-cut): the strip of her face at the left edge is missed by dlib and BlazeFace,
    even in the mirrored border; MTCNN finds it there, and the blur covers it."""
    from p3m.io.images import read_image_file
    from p3m.privacy.audit import crosses_frame
    from p3m.privacy.blur import blur_faces
    from p3m.privacy.faces import detect_faces

    image = np.ascontiguousarray(read_image_file(sample_photos["group"])[:, 121:])
    strip = (0, 283, 54, 390)  # the gallery set's label of what is left of her face
    centre = ((strip[0] + strip[2]) // 2, (strip[1] + strip[3]) // 2)

    def at_strip(faces):
        return [f for f in faces if f.box[0] <= centre[0] <= f.box[2] and f.box[1] <= centre[1] <= f.box[3]]

    assert at_strip(detect_faces(image, detector="hog+blazeface")) == []
    found = at_strip(detect_faces(image))
    assert len(found) == 1 and found[0].source == "mtcnn" and found[0].landmarks is None
    assert crosses_frame(found[0], image.shape[:2])
    blurred = blur_faces(image, faces=found, sigma_scale=0.12)
    assert blurred.mask[strip[1]:strip[3], strip[0]:strip[2]].mean() > 0.9


def test_a_weak_mtcnn_face_is_audited_only_where_the_face_mesh_sees_a_face(face_models, sample_photos):
    """The strip of the cut group photo's left face scores 0.77 (under CONFIDENT), but
    the face mesh's classifier sees a face there: it gets the mesh's outline and its
    identity is audited. MTCNN's 0.73 box on Obama's jacket is no face to the mesh: it
    is blurred, not audited, and does not hold the photo back."""
    from p3m.io.images import read_image_file
    from p3m.privacy.anonymize import anonymize
    from p3m.privacy.faces import CONFIDENT, detect_faces

    group = np.ascontiguousarray(read_image_file(sample_photos["group"])[:, 121:])
    (strip,) = [f for f in detect_faces(group) if f.source == "mtcnn" and f.box[0] < 0]
    assert strip.score < CONFIDENT["mtcnn"] and strip.mesh is not None and strip.audited

    obama = read_image_file(sample_photos["obama"])
    result = anonymize(obama)
    weak = [f for f in result.detected if f.source == "mtcnn"]
    assert weak and all(f.score < CONFIDENT["mtcnn"] and f.mesh is None and not f.audited for f in weak)
    assert result.status == "ok" and result.audit.low_confidence == len(weak)


def test_mtcnns_border_search_keeps_new_and_cut_faces_only(monkeypatch):
    """What MTCNN adds (frame 250 x 250, mirrored border 75): a new face inside and one cut
    by the left edge (found in the border: its padding is kept); not a face found already,
    the mirror image of a face inside, a box mostly in the border, or one across a
    corner (a four-fold mirrored patch, as at the astronaut's top-left corner)."""
    import p3m.privacy.faces as faces
    from p3m.privacy.faces import Face

    pad = 75
    known = Face((100, 100, 150, 150), None, 0.9, "hog")
    boxes = {"new": (30, 160, 70, 200), "cut": (-20, 40, 30, 90), "known": (102, 98, 152, 150),
             "mirror of new": (-69, 160, -29, 200), "in the border": (-40, 20, 5, 65), "corner": (-8, -8, 8, 12)}
    scores = dict(zip(boxes, (0.92, 0.95, 0.99, 0.97, 0.9, 0.98)))  # sure faces: no face mesh asked

    def found(image, *args):
        assert image.shape[:2] == (250 + 2 * pad, 250 + 2 * pad)
        return [mtcnn.Detection(np.array(box, np.float32) + pad, np.zeros((5, 2)), scores[name])
                for name, box in boxes.items()]

    monkeypatch.setattr(mtcnn, "detect_mtcnn", found)
    kept = faces._mtcnn_faces(np.zeros((250, 250, 3), np.uint8), [known], edges=True)
    assert sorted(face.box for face in kept) == sorted([boxes["new"], boxes["cut"]])
    assert all(face.source == "mtcnn" and face.landmarks is None for face in kept)
    assert {face.box: face.padding for face in kept} == {boxes["new"]: 0, boxes["cut"]: pad}
    assert faces._at_corner((-8, -8, 8, 12), 250, 250) and not faces._at_corner((-20, 40, 30, 90), 250, 250)


def test_a_weak_mtcnn_face_takes_the_face_meshs_outline_on_the_photo(monkeypatch):
    """A weak box is shown to the face mesh on the image MTCNN searched (with its
    mirrored border); where the mesh sees a face its points come back on the photo,
    and the face is audited; where it does not, the box stays unaudited."""
    import p3m.privacy.face_mesh as face_mesh
    import p3m.privacy.faces as faces

    pad, boxes = 75, [(30, 160, 70, 200), (150, 30, 190, 70)]

    def found(image, *args):
        return [mtcnn.Detection(np.array(box, np.float32) + pad, np.zeros((5, 2)), 0.8) for box in boxes]

    def mesh(image, detection):
        assert image.shape[:2] == (250 + 2 * pad, 250 + 2 * pad)  # the image searched, border and all
        corners = detection.box.reshape(2, 2).astype(np.float32)
        return face_mesh.Mesh(corners, 0.9 if detection.box[0] < 150 + pad else 0.1)

    monkeypatch.setattr(mtcnn, "detect_mtcnn", found)
    monkeypatch.setattr(face_mesh, "face_mesh", lambda: mesh)
    seen, unseen = sorted(faces._mtcnn_faces(np.zeros((250, 250, 3), np.uint8), [], edges=True),
                          key=lambda f: f.box[0])
    assert seen.mesh.tolist() == [[30, 160], [70, 200]] and seen.audited
    assert unseen.mesh is None and not unseen.audited


def test_without_the_models_mtcnn_says_what_to_run(face_models, tmp_path, monkeypatch):
    """Loaded weights are cached per P3M_HOME: a home without MTCNN's files is told to fetch them."""
    from p3m.errors import ModelMissingError

    assert len(mtcnn.networks()) == 3
    monkeypatch.setenv("P3M_HOME", str(tmp_path / "empty"))
    with pytest.raises(ModelMissingError, match="p3m weights fetch faces"):
        mtcnn.networks()
