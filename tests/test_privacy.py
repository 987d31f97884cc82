"""Face obfuscation: the method, fail-closed batches, and the measured privacy outcome,
on a real face that ships with scikit-image (the astronaut) and constructed cases."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from skimage import data

from p3m.cli.main import main
from p3m.privacy import anonymize, audit_pair
from p3m.privacy.anonymize import STRENGTHS
from p3m.privacy.audit import MATCH_THRESHOLD, changed_transition_pixels
from p3m.privacy.blur import blur_faces, face_region, head_mask
from p3m.privacy.faces import detect_faces, face_descriptor

pytest.importorskip("dlib")


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut()


@pytest.fixture(scope="module")
def real_face(astronaut):
    faces = [f for f in detect_faces(astronaut) if f.score >= 0.5]
    assert len(faces) == 1
    return faces[0]


def test_mask_follows_jaw_and_reaches_above_the_brows(real_face, astronaut):
    region = face_region(real_face.landmarks, astronaut.shape[:2], forehead=0.3)
    jaw, brows = real_face.landmarks[:17], real_face.landmarks[17:27]
    assert region[tuple(jaw[8][::-1] - [3, 0])]  # just above the chin point
    top = np.nonzero(region.any(axis=1))[0][0]
    assert top < brows[:, 1].min() - 0.2 * (jaw[:, 1].max() - brows[:, 1].min())  # above the brows
    assert not region[10, 10]


def test_default_strength_hides_the_identity_and_changes_nothing_else(astronaut, real_face):
    original = astronaut.copy()
    result = anonymize(astronaut)
    assert np.array_equal(astronaut, original), "the input must not be modified"
    assert result.status == "ok" and len(result.faces) >= 1
    changed = (result.image != astronaut).any(axis=2)
    assert changed.sum() > 1000 and not (changed & (result.mask == 0)).any()
    audit = audit_pair(astronaut, result.image, faces=result.detected, face_mask=result.mask)
    assert audit.identity_matches == 0 and audit.redetected == 0
    assert min(audit.distances) > MATCH_THRESHOLD
    assert audit.changed_outside_fraction == 0.0


def test_a_weak_blur_does_not_hide_the_identity(astronaut, real_face):
    weak = blur_faces(astronaut, sigma_scale=0.02, faces=[real_face])
    distance = np.linalg.norm(face_descriptor(astronaut, real_face) - face_descriptor(weak.image, real_face))
    assert distance < MATCH_THRESHOLD  # why the default is a tenth of the face width or more


def test_transition_pixels_keep_their_exact_values(astronaut, real_face):
    alpha = np.full(astronaut.shape[:2], 255, np.uint8)
    left, top, right, bottom = real_face.box
    alpha[top:bottom, (left + right) // 2: (left + right) // 2 + 6] = 128  # hair over the face
    result = anonymize(astronaut, alpha, faces=[real_face])
    soft = alpha == 128
    assert np.array_equal(result.image[soft], astronaut[soft])
    assert (result.image != astronaut).any(axis=2).sum() > 1000
    audit = audit_pair(astronaut, result.image, faces=[real_face], alpha=alpha)
    assert audit.changed_transition_pixels == 0


def test_several_faces_are_all_blurred(astronaut):
    pair = np.concatenate([astronaut, astronaut[:, ::-1]], axis=1)
    result = anonymize(pair)
    confident = [f for f in result.faces if f.score is not None and f.score >= 0.5]
    assert len(confident) == 2
    audit = audit_pair(pair, result.image, faces=result.detected)
    assert audit.identity_matches == 0


def test_grayscale_and_border_cut_faces(astronaut, real_face):
    gray = np.repeat(astronaut.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    assert anonymize(gray).status == "ok"
    left, top, right, bottom = real_face.box
    cut = astronaut[top + 30:, left + 35:]  # the face runs off the top-left border
    result = anonymize(cut)
    assert result.status in ("ok", "no-face")  # defined either way: blurred, or held back
    if result.status == "ok":
        assert result.mask.shape == cut.shape[:2]


def test_tiny_faces_and_no_faces_fail_closed(astronaut):
    tiny = np.asarray(Image.fromarray(astronaut).resize((48, 48)))
    for image in (tiny, data.coffee()):
        result = anonymize(image)
        assert result.status == "no-face" and result.image is None and not result.mask.any()


def test_hand_drawn_mask_replaces_detection():
    coffee = data.coffee()
    hand = np.zeros(coffee.shape[:2], np.uint8)
    hand[100:200, 100:220] = 255
    result = anonymize(coffee, hand_mask=hand)
    assert result.status == "hand-mask"
    changed = (result.image != coffee).any(axis=2)
    assert changed.any() and not changed[hand == 0].any()


def test_unknown_strength_and_mismatched_alpha_are_clear_errors(astronaut):
    from p3m.errors import P3MError

    with pytest.raises(P3MError, match="strength must be one of low, medium, high"):
        anonymize(astronaut, strength="extreme")
    with pytest.raises(P3MError, match="alpha matte is 10x10"):
        anonymize(astronaut, np.zeros((10, 10), np.uint8))
    assert set(STRENGTHS) == {"low", "medium", "high"}


# -- the command -------------------------------------------------------------------------
@pytest.fixture()
def photos(tmp_path, astronaut):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(astronaut).save(src / "astro.jpg", quality=87)
    Image.fromarray(astronaut).save(src / "astro_png.png")
    Image.fromarray(data.coffee()).save(src / "coffee.jpg")
    return src


def test_cli_fails_closed_reports_and_audits(tmp_path, photos, capsys):
    before = {p.name: p.read_bytes() for p in photos.iterdir()}
    out = tmp_path / "out"
    assert main(["anonymize", str(photos), "-o", str(out)]) == 1  # coffee held back
    err = capsys.readouterr().err
    assert "coffee.jpg: no-face" in err and "identity matches 0" in err
    assert {p.name for p in (out / "blurred_image").iterdir()} == {"astro.jpg", "astro_png.png"}
    assert (out / "facemask" / "astro.png").is_file()
    assert {p.name: p.read_bytes() for p in photos.iterdir()} == before, "inputs must not change"
    report = json.loads((out / "report.json").read_text())
    rows = {r["image"]: r for r in report["images"]}
    assert rows["coffee.jpg"]["status"] == "no-face" and rows["astro.jpg"]["identity_matches"] == 0
    assert report["total"]["no_face"] == 1 and report["total"]["identity_matches"] == 0
    with Image.open(out / "blurred_image" / "astro.jpg") as a, Image.open(photos / "astro.jpg") as b:
        assert a.quantization == b.quantization  # JPEG quality kept
    # rerun: existing outputs skipped; --allow-no-face copies the coffee through unchanged
    assert main(["anonymize", str(photos), "-o", str(out), "--allow-no-face"]) == 0
    err = capsys.readouterr().err
    assert "skipped" in err or "2 skipped" in err
    assert (out / "blurred_image" / "coffee.jpg").is_file()


def test_mattes_are_copied_and_transitions_protected_with_an_outcome_per_image(tmp_path, photos, astronaut):
    from p3m.jobs.anonymize import AnonymizeOptions, anonymize_files
    from p3m.jobs.results import Status
    from p3m.privacy.anonymize import Outcome

    mattes = tmp_path / "alpha"
    mattes.mkdir()
    alpha = np.full(astronaut.shape[:2], 255, np.uint8)
    alpha[60:200, 200:206] = 100
    Image.fromarray(alpha).save(mattes / "astro.png")
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(mattes / "astro_png.png")  # wrong size
    out = tmp_path / "out"
    report = anonymize_files([photos / "astro.jpg", photos / "astro_png.png", photos / "coffee.jpg"], out,
                             AnonymizeOptions(alpha_dir=mattes, jpeg_quality=95))
    by_image = {r.image: r for r in report.records}
    assert {name: (r.outcome, r.status) for name, r in by_image.items()} == {
        "astro.jpg": (Outcome.OK, Status.DONE), "astro_png.png": (Outcome.ERROR, Status.FAILED),
        "coffee.jpg": (Outcome.MISSING_MATTE, Status.FAILED)}
    assert by_image["astro_png.png"].reason == "error: matte astro_png.png is 5x5, image is 512x512"
    assert by_image["astro.jpg"].audit.changed_transition_pixels == 0 and not report.ok
    assert by_image["astro.jpg"].outputs["mask"] == str(out / "mask" / "astro.png")
    assert (out / "mask" / "astro.png").is_file() and not (out / "blurred_image" / "astro_png.png").exists()
    written = json.loads((out / "report.json").read_text())
    assert written == json.loads(json.dumps(report.to_dict(), default=str))  # the file is the result, written
    assert report.totals()["errors"] == 2 and report.totals()["anonymized"] == 1
    again = anonymize_files([photos / "astro.jpg", photos / "astro_png.png", photos / "coffee.jpg"], out,
                            AnonymizeOptions(alpha_dir=mattes, jpeg_quality=95))  # the two failures are tried again
    journal = [json.loads(line)["image"] for line in (out / "report.jsonl").read_text().splitlines()]
    assert sorted(journal) == ["astro.jpg", "astro_png.png", "coffee.jpg"]  # one row per image, not per run
    assert again.audit_line().startswith("over the folder's report (1 of 3 from earlier runs): ")
    anonymize_files([photos / "coffee.jpg"], out, AnonymizeOptions(alpha_dir=mattes))  # one image given this time
    journal = [json.loads(line)["image"] for line in (out / "report.jsonl").read_text().splitlines()]
    assert sorted(journal) == ["astro.jpg", "astro_png.png", "coffee.jpg"]  # the others' rows are kept


def test_a_replaced_input_is_done_again_and_a_held_back_one_leaves_no_old_output(tmp_path, astronaut):
    from p3m.jobs.anonymize import anonymize_files
    from p3m.privacy.anonymize import Outcome

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    Image.fromarray(astronaut).save(src / "p.jpg", quality=90)
    assert anonymize_files([src], out).records[0].outcome is Outcome.OK
    assert anonymize_files([src], out).records[0].outcome is Outcome.SKIPPED  # the same input: done
    Image.fromarray(data.coffee()).save(src / "p.jpg", quality=90)  # another photo under the same name
    again = anonymize_files([src], out).records[0]
    assert again.outcome is Outcome.NO_FACE  # not taken for done
    assert not (out / "blurred_image" / "p.jpg").exists() and not (out / "facemask" / "p.png").exists()
    rows = [json.loads(line) for line in (out / "report.jsonl").read_text().splitlines()]
    assert [row["status"] for row in rows] == ["no-face"]


def test_a_rerun_with_hold_unaudited_redoes_what_a_laxer_run_wrote(tmp_path, astronaut):
    """The astronaut is written by default (HOG's weak hit on her badge blurred, not
    audited); rerun into the same folder with hold_unaudited, she must not stay published
    as done: she is redone, held back, her outputs removed. A strict row stays done for
    a rerun without the option."""
    from p3m.jobs.anonymize import anonymize_files
    from p3m.options import AnonymizeOptions
    from p3m.privacy.anonymize import Outcome

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    Image.fromarray(astronaut).save(src / "p.png")
    assert anonymize_files([src], out).records[0].outcome is Outcome.OK
    strict = anonymize_files([src], out, AnonymizeOptions(hold_unaudited=True))
    assert strict.records[0].outcome is Outcome.UNAUDITED and "a weak hog detection" in strict.records[0].reason
    assert not (out / "blurred_image" / "p.png").exists() and not (out / "facemask" / "p.png").exists()
    assert strict.totals()["unaudited"] == 1 and strict.audit_line().endswith("1 with a region the audit cannot check")
    Image.fromarray(np.ascontiguousarray(astronaut[:300])).save(src / "p.png")  # no badge: written under the option
    assert anonymize_files([src], out, AnonymizeOptions(hold_unaudited=True)).records[0].outcome is Outcome.OK
    assert anonymize_files([src], out).records[0].outcome is Outcome.SKIPPED


def test_hold_unaudited_holds_heads_and_weak_faces_not_carried_regions_whose_face_has_gone():
    """What hold_unaudited counts: a person's head (no face in it) and a weak detection;
    not a region carried from where its face has gone (a video: checked already, unblurred
    it is not that face) nor an audited face."""
    from p3m.privacy.anonymize import _unaudited
    from p3m.privacy.blur import Region
    from p3m.privacy.faces import Face

    mask = np.zeros((100, 200), bool)
    strong, weak = Face((10, 10, 40, 40), None, 1.1, "hog"), Face((50, 10, 80, 40), None, 0.12, "hog")
    head, gone = Region(mask, 30, (100, 0, 140, 50), head=True), Region(mask, 30, (150, 0, 190, 50))
    carried_weak = Region(mask, 30, (150, 50, 190, 99), face=Face((150, 50, 190, 99), None, 0.6, "mtcnn"))
    assert _unaudited([strong, weak], [head, gone, carried_weak], mask.shape) == [
        ((50, 10, 80, 40), "a weak hog detection (0.12)"), ((150, 50, 190, 99), "a weak mtcnn detection (0.60)"),
        ((100, 0, 140, 50), "the head of a person whose face was not found")]


def test_a_hand_drawn_mask_is_written_under_hold_unaudited():
    """A hand-drawn mask is the user's own judgement of where the face is: written."""
    coffee = data.coffee()
    drawn = np.zeros(coffee.shape[:2], np.uint8)
    drawn[50:150, 200:300] = 255
    result = anonymize(coffee, hand_mask=drawn, hold_unaudited=True)
    assert result.status == "hand-mask" and result.image is not None


def test_the_totals_count_only_the_faces_of_written_images():
    from p3m.jobs.anonymize import AnonymizeRecord, AnonymizeReport
    from p3m.jobs.results import Status
    from p3m.privacy.anonymize import Outcome

    held = AnonymizeRecord("a.png", Status.HELD_BACK, image="a.png", outcome=Outcome.IDENTIFIABLE, faces=3)
    done = AnonymizeRecord("b.png", Status.DONE, image="b.png", outcome=Outcome.OK, faces=2)
    report = AnonymizeReport(records=[held, done])
    assert report.totals()["faces"] == 2 and report.audit_line().startswith("2 face(s) blurred in 1 image")


def test_privacy_audit_command_with_references(tmp_path, photos, astronaut, capsys):
    out = tmp_path / "out"
    main(["anonymize", str(photos / "astro.jpg"), "-o", str(out)])
    refs = tmp_path / "refs" / "eileen"
    refs.mkdir(parents=True)
    Image.fromarray(astronaut[:, ::-1]).save(refs / "mirrored.png")  # another photo of the same person
    Image.fromarray(np.asarray(Image.fromarray(astronaut).resize((400, 400)))).save(refs / "smaller.png")
    capsys.readouterr()
    code = main(["privacy-audit", str(photos), str(out / "blurred_image"), "--reference", str(tmp_path / "refs"),
                 "--json", str(tmp_path / "audit.json")])
    result = json.loads((tmp_path / "audit.json").read_text())["images"]["astro"]
    assert code == 0 and result["identity_matches"] == 0
    assert result["reference_distances"] and min(result["reference_distances"]) > MATCH_THRESHOLD
    # and the references do recognise the un-blurred face (the check is not vacuous)
    from p3m.privacy.audit import reference_descriptors

    refs_desc = reference_descriptors([astronaut[:, ::-1]])
    face = [f for f in detect_faces(astronaut) if f.score >= 0.5][0]
    assert min(np.linalg.norm(face_descriptor(astronaut, face) - r) for r in refs_desc) < MATCH_THRESHOLD


def test_blurring_only_the_face_box_equals_blurring_the_whole_image():
    from p3m.privacy.blur import _blend, blur_inside

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    for top, left in ((120, 150), (0, 0), (250, 330)):  # inside, and touching the borders
        mask = np.zeros((300, 400), bool)
        mask[top:top + 50, left:left + 70] = True
        keep = np.zeros_like(mask)
        keep[top + 10, :] = True
        np.testing.assert_array_equal(blur_inside(image, mask, 9.0, keep), _blend(image, mask, 9.0, keep))


def test_privacy_audit_reads_references_from_a_csv(tmp_path, photos, astronaut, capsys):
    out = tmp_path / "out"
    main(["anonymize", str(photos / "astro.jpg"), "-o", str(out)])
    Image.fromarray(np.ascontiguousarray(astronaut[:, ::-1])).save(tmp_path / "ref1.png")
    (tmp_path / "refs.csv").write_text("image,person\nref1.png,eileen\n")
    capsys.readouterr()
    assert main(["privacy-audit", str(photos), str(out / "blurred_image"), "--reference",
                 str(tmp_path / "refs.csv")]) == 0
    assert "1 reference face(s)" in capsys.readouterr().err


def test_changed_transition_pixels_read_every_matte_depth_alike():
    original = np.zeros((4, 5, 3), np.uint8)
    anonymized = original.copy()
    anonymized[:, :3] = 9  # columns 0-2 changed
    alpha8 = np.zeros((4, 5), np.uint8)
    alpha8[:, 1:4] = 128  # transition in columns 1-3
    alpha8[0, 2] = 255  # one opaque pixel inside the changed area
    counts = {changed_transition_pixels(original, anonymized, a)
              for a in (alpha8, alpha8.astype(np.uint16) * 257, alpha8 / 255.0)}
    assert counts == {7}  # columns 1-2 of 4 rows, less the opaque pixel


def _audit_with(monkeypatch, distance: float):
    """The real audit, with every face's identity distance replaced (at every view)."""
    import importlib

    module = importlib.import_module("p3m.privacy.anonymize")  # the package's `anonymize` is the function
    real = module.audit_pair

    def audit(*args, **kwargs):
        result = real(*args, **kwargs)
        result.distances = [distance] * len(result.distances)
        result.views = [[distance] for _ in result.distances]
        return result
    monkeypatch.setattr(module, "audit_pair", audit)


@pytest.mark.parametrize("distance", [0.62, 0.55])
def test_at_the_strongest_blur_a_face_within_the_margin_holds_the_photo_back(astronaut, monkeypatch, distance):
    """0.62 is no match (< 0.6) but within the 0.05 margin; 0.55 is a match: blurred harder,
    then whole heads, then held back, whatever the blur did to the rest of the chip."""
    _audit_with(monkeypatch, distance)
    result = anonymize(astronaut)
    assert result.status == "identifiable" and result.image is None and result.whole_heads
    assert result.sigma_scale == pytest.approx(0.4)
    how = "recognised" if distance < 0.6 else f"within the identity margin (distance {distance:.3f}, under 0.65)"
    (face,) = [f for f in result.detected if f.audited]  # her face (a weak detection of her badge is not audited)
    left, top, right, bottom = face.box  # the reason says which face: a group photo has many
    assert f"the face at x {left}-{right}, y {top}-{bottom} is still {how} at the strongest blur" in result.reason
    assert "cut by the frame" not in result.reason  # her face is inside the frame


def test_a_face_is_audited_where_an_attacker_would_frame_it_too(astronaut, monkeypatch):
    """Besides its own landmarks, each face is measured at landmarks fitted in the boxes an
    attacker's detector might draw, and counts at its closest. With a box three times
    the face (its chip then mostly the unblurred surroundings) she stays close there:
    the blur grows to the strongest, covers her whole head, and the photo is held back."""
    import p3m.privacy.faces as faces

    result = anonymize(astronaut)
    assert result.status == "ok" and len(result.audit.views[0]) == 2  # her own landmarks, the 1.25x box
    assert result.audit.distances[0] == min(result.audit.views[0])
    assert result.sigma_scale == pytest.approx(0.12) and not result.whole_heads
    monkeypatch.setattr(faces, "ATTACKER_BOXES", ((3.0, 0.0),))
    result = anonymize(astronaut)
    assert result.status == "identifiable" and result.whole_heads and result.sigma_scale == pytest.approx(0.4)
    ours, theirs = result.audit.views[0]
    assert ours > 0.65 > theirs  # far at ours; close at theirs


@pytest.mark.slow
def test_a_face_without_its_own_landmarks_is_audited_with_fitted_ones(face_models):
    import cv2

    small = cv2.resize(data.astronaut(), (112, 112), interpolation=cv2.INTER_AREA)  # her face about 22 px wide
    frame = np.full((480, 640, 3), 128, np.uint8)
    frame[200:312, 300:412] = small
    result = anonymize(frame)
    (face,) = result.detected
    assert face.source == "blazeface" and not face.has_descriptor  # no landmarks of its own (too small)
    assert result.audit.low_confidence == 0 and len(result.audit.distances) == 1  # audited all the same
    assert result.status != "ok" or result.audit.distances[0] >= MATCH_THRESHOLD + 0.05


def test_anonymize_gives_an_rgba_array_or_pil_image_back_with_its_alpha(astronaut):
    alpha = np.tile(np.linspace(255, 32, 512).astype(np.uint8), (512, 1))
    for given in (np.dstack([astronaut, alpha]), Image.fromarray(np.dstack([astronaut, alpha]))):
        result = anonymize(given)
        assert result.status == "ok" and result.image.shape == (512, 512, 4)
        assert np.array_equal(result.image[..., 3], alpha)
        assert not np.array_equal(result.image[..., :3], astronaut)  # the face blurred in the stored colours
    assert anonymize(astronaut).image.shape == (512, 512, 3)


def test_an_rgba_photo_keeps_its_alpha_and_its_hidden_faces_are_blurred_too(tmp_path, astronaut, real_face):
    """Its alpha channel is written back untouched; the faces are found in the colours as
    stored, so a face under transparent pixels (still in the file) is blurred as well."""
    from p3m.jobs.anonymize import anonymize_files

    height, width = astronaut.shape[:2]
    ramp = np.tile(np.linspace(255, 64, width).astype(np.uint8), (height, 1))
    left, top, right, bottom = real_face.box
    hidden = ramp.copy()
    hidden[top:bottom, left:right] = 0  # her face transparent: invisible, but in the file
    (tmp_path / "in").mkdir()
    for name, alpha in (("ramp", ramp), ("hidden", hidden)):
        Image.fromarray(np.dstack([astronaut, alpha])).save(tmp_path / "in" / f"{name}.png")
    report = anonymize_files([tmp_path / "in"], tmp_path / "out")
    assert report.totals()["anonymized"] == 2
    for name, alpha in (("ramp", ramp), ("hidden", hidden)):
        written = np.asarray(Image.open(tmp_path / "out" / "blurred_image" / f"{name}.png"))
        assert written.shape == (height, width, 4) and np.array_equal(written[..., 3], alpha)
        centre = ((top + bottom) // 2, (left + right) // 2)
        core = (slice(centre[0] - 10, centre[0] + 10), slice(centre[1] - 10, centre[1] + 10))
        assert (written[core][..., :3] != astronaut[core]).any(axis=2).mean() > 0.9, name


def _seen_from_behind(astronaut: np.ndarray) -> np.ndarray:
    """Her portrait with the face painted over in hair: a head seen from behind (no face to find)."""
    import cv2

    back = astronaut[:320].copy()
    hair = (np.array([92, 64, 36]) + np.random.default_rng(0).normal(0, 14, back.shape)).clip(0, 255).astype(np.uint8)
    head = np.zeros(back.shape[:2], np.uint8)
    cv2.ellipse(head, (222, 112), (70, 84), 0, 0, 360, 1, -1)
    back[head > 0] = hair[head > 0]
    return back


@pytest.mark.slow
def test_a_person_seen_from_behind_is_held_back_or_gets_the_head_blurred(face_models, astronaut):
    back = _seen_from_behind(astronaut)
    assert detect_faces(back) == []
    held = anonymize(back)
    assert held.status == "person-without-face" and held.image is None and held.people == 1
    assert "person(s) seen but no face found" in held.reason
    covered = anonymize(back, allow_no_face=True)
    assert covered.status == "heads-covered" and covered.people == 1
    changed = (covered.image != back).any(axis=2)
    assert changed[40:150, 170:280].mean() > 0.9 and not changed[250:, :].any()  # the head, not the body
    strict = anonymize(back, allow_no_face=True, hold_unaudited=True)  # a blurred head is not an audited face
    assert strict.status == "unaudited" and strict.status.held_back and strict.image is None
    assert "held back as asked (hold_unaudited" in strict.reason


@pytest.mark.slow
def test_a_bystander_out_of_focus_gets_the_head_blurred(face_models, astronaut):
    import cv2

    scene = np.full((512, 1024, 3), 210, np.uint8)
    scene[:, :512] = astronaut
    scene[112:512, 584:984] = cv2.GaussianBlur(cv2.resize(astronaut, (400, 400)), (0, 0), 6)  # no face found there
    assert any(face.box[0] > 512 and face.source == "mtcnn" for face in detect_faces(scene))  # MTCNN finds her
    assert not any(face.box[0] > 512 for face in detect_faces(scene, detector="hog+blazeface"))
    result = anonymize(scene, detector="hog+blazeface")  # where no family finds her face, the people search does
    assert result.status == "ok" and result.people == 1
    changed = (result.image != scene).any(axis=2)
    assert changed[150:240, 740:830].mean() > 0.9  # the bystander's head (her face at about 785, 190)
    assert changed[80:160, 185:255].mean() > 0.9  # and the face in focus


@pytest.mark.slow
def test_a_person_behind_another_in_one_silhouette_gets_the_head_blurred(face_models, astronaut):
    """Two people who overlap are one silhouette to the segmentation: her face found
    must not count for the person behind her (seen from behind, no face found), whose
    head is blurred as another person's."""
    from p3m.privacy.people import heads_without_faces

    scene = np.ascontiguousarray(np.hstack([astronaut[:320, 60:330], _seen_from_behind(astronaut)[:, 130:450]]))
    (face,) = [f for f in detect_faces(scene) if f.audited]
    assert face.box[2] < 270  # her face only
    (head,) = heads_without_faces(scene, [face.box])
    assert head.box[0] > face.box[2]  # beside her, not her
    assert head.beside == (0,)  # pressed against her head
    result = anonymize(scene)
    assert result.status == "ok" and result.people == 1
    changed = (result.image != scene).any(axis=2)
    assert changed[40:170, 310:400].mean() > 0.9  # the head behind her (the painted back of it at 362, 112)
    assert changed[head_mask(face, scene.shape[:2])].mean() > 0.9  # and her whole head: his cheek may lie by hers
    assert not changed[250:, :].any()  # and no body


@pytest.mark.slow
def test_a_neighbour_cut_by_the_frame_gets_the_head_blurred_down_to_the_chin(face_models, astronaut):
    """A strip of another person at the frame's left edge (her cheek and hair, 60 px
    wide): no face is found there, and the strip's width says nothing of the head's
    height, so the head is taken as tall as the faces found in the photo."""
    scene = np.ascontiguousarray(np.hstack([astronaut[:, 250:310], astronaut[:, 40:]]))
    assert not any(face.box[0] < 60 for face in detect_faces(scene))
    result = anonymize(scene)
    assert result.status == "ok" and result.people >= 1
    changed = (result.image != scene).any(axis=2)
    assert changed[80:170, 0:15].mean() > 0.9  # her cheek, down to the chin
    assert changed[40:100, 20:50].mean() > 0.9  # her hair
    assert not changed[300:, :60].any()  # not her body
    # Her blurred strip cannot be shown unlinkable (dlib's distance means nothing on it), nor
    # can HOG's weak hit on the suit: with hold_unaudited the photo is held back. The
    # portrait without the strip and the suit is written.
    strict = anonymize(scene, hold_unaudited=True)
    assert strict.status == "unaudited" and strict.image is None and "2 blurred region(s)" in strict.reason
    assert sorted((box[0], what[:10]) for box, what in strict.unaudited) == [(0, "the head o"), (145, "a weak hog")]
    alone = anonymize(np.ascontiguousarray(astronaut[:300, 40:]), hold_unaudited=True)
    assert alone.status == "ok" and alone.people == 0 and not alone.unaudited


def _people_on(monkeypatch, person: np.ndarray):
    """The people search with ``person`` (bool, the photo's size) as the segmentation's map."""
    from p3m.privacy import people

    monkeypatch.setattr(people, "_segmentation", lambda: object())
    monkeypatch.setattr(people, "person_probability", lambda model, image: person.astype(np.float32))
    return lambda faces: people.heads_without_faces(np.zeros(person.shape + (3,), np.uint8), faces)


def test_a_strip_at_the_edge_beside_another_persons_face_is_a_person_of_its_own(monkeypatch):
    """A strip of a person at the left edge, apart from a silhouette whose face reaches
    over the strip's columns lower down: the strip's head is its own (as tall as the
    faces found), not explained by the other person's face."""
    person = np.zeros((512, 512), bool)
    person[100:, :14] = True     # the strip, cut by the frame
    person[120:, 16:200] = True  # another person, apart
    heads = _people_on(monkeypatch, person)([(10, 130, 60, 180)])
    (head,) = [h for h in heads if h.box[2] <= 14]
    assert head.box[1] == 100 and head.box[3] >= 190  # two face widths down from its top
    assert head.width >= 50  # blurred at the faces' scale, not at its 14 px


def test_a_strip_beside_a_head_is_its_hair_and_a_wide_part_is_another_head(monkeypatch):
    """In one silhouette with a found face: a part beside the head narrower than 0.6
    face widths is hair (no head); a wider one is another person's head."""
    person = np.zeros((512, 512), bool)
    person[40:, 160:320] = True  # her head and body; her face (200, 100, 280, 190): 80 px
    person[60:190, 310:340] = True  # hair: 30 px beyond what her face explains (to 308)
    find = _people_on(monkeypatch, person)
    assert find([(200, 100, 280, 190)]) == []
    person[60:190, 310:390] = True  # 80 px: another person beside her
    (head,) = find([(200, 100, 280, 190)])
    assert head.box[0] >= 300 and head.box[1] <= 60 and head.box[3] >= 180
    assert head.beside == (0,)  # against what her face explains: her whole head is covered too
    person[60:190, 310:330] = False  # 20 px of background between their heads ...
    person[190:260, 310:390] = True  # ... one silhouette below the chin
    (apart,) = find([(200, 100, 280, 190)])
    assert apart.box[0] >= 330 and apart.beside == ()  # not against her head: hers is not widened


def _tiny_cameraman() -> np.ndarray:
    """scikit-image's cameraman (a profile) shrunk until his face is about 30 px, as RGB."""
    import cv2

    return cv2.resize(np.dstack([data.camera()] * 3), None, fx=0.35, fy=0.35, interpolation=cv2.INTER_AREA)


@pytest.mark.slow
def test_a_tiny_profile_is_found_covered_over_the_head_and_held_back_while_close(face_models):
    """scikit-image's cameraman, in profile, shrunk until his face is 30 px: found by
    BlazeFace, outlined without dlib's landmarks, so his whole head is blurred. At an
    attacker's box 1.25x his face his blurred head stays within the margin of him (his
    hair, ear and coat are the same), so the photo is held back, not written."""
    tiny = _tiny_cameraman()
    (face,) = detect_faces(tiny)
    assert face.width < 40 and face.landmarks is None and face.source == "blazeface"
    assert face.box[0] <= 80 <= face.box[2] and face.box[1] <= 58 <= face.box[3]  # his face, not his camera
    result = anonymize(tiny)
    assert result.mask[58, 80] and result.mask[40, 80]  # his face, and his head above it
    assert result.status == "identifiable" and result.image is None and result.whole_heads
    assert len(result.audit.views[0]) == 2 and result.audit.nearest() < 0.65  # the attacker's box counts


def test_without_the_segmentation_model_people_are_not_looked_for(monkeypatch, tmp_path, astronaut):
    from p3m.privacy.people import heads_without_faces, people_note

    monkeypatch.setenv("P3M_HOME", str(tmp_path))  # nothing installed here
    assert heads_without_faces(astronaut, []) == [] and "p3m weights fetch default" in people_note()


def test_the_cut_face_advice_is_given_only_when_a_cut_face_is_why():
    """"Cut by the frame ... crop the face out" is the advice when a cut face stays
    recognised or within the margin; not when a face is re-detected (a stronger blur or
    a mask helps there), nor when the closest face is not cut."""
    from p3m.privacy.anonymize import AnonymizeResult, Outcome
    from p3m.privacy.audit import AuditResult

    def held(redetected: int, views, cut) -> AnonymizeResult:
        boxes = [(10 * i, 0, 10 * i + 8, 8) for i in range(len(views))]
        audit = AuditResult(len(views), views=views, cut_by_frame=cut, distances=[min(v) for v in views],
                            boxes=boxes, redetected_boxes=boxes[:redetected])
        return AnonymizeResult(Outcome.IDENTIFIABLE, None, np.zeros((4, 4), np.uint8), audit=audit, sigma_scale=0.4)

    assert "cut by the frame" in held(0, [[0.7], [0.58]], [False, True]).reason
    assert held(0, [[0.7], [0.58]], [False, True]).reason.startswith("the face at x 10-18, y 0-8 is still recognised")
    assert held(1, [[0.9]], [True]).reason.startswith("the face at x 0-8, y 0-8 is still re-detected")
    assert "cut by the frame" not in held(1, [[0.9]], [True]).reason  # re-detected: not what the cut explains
    assert "cut by the frame" not in held(0, [[0.58], [0.7]], [False, True]).reason  # the close face is whole
    assert held(0, [[0.62]], [True]).held_by_cut_face and not held(1, [[0.62]], [True]).held_by_cut_face


def test_the_face_named_is_the_one_a_reference_photo_matches_when_that_is_closest():
    from p3m.privacy.audit import AuditResult

    boxes = [(0, 0, 8, 8), (20, 0, 28, 8)]
    audit = AuditResult(2, views=[[0.65], [0.8]], distances=[0.65, 0.8], cut_by_frame=[True, False], boxes=boxes,
                        reference_distances=[0.9, 0.4])  # the second face matches its reference photo
    assert audit.nearest() == 0.4 and audit.nearest_box() == boxes[1] and not audit.nearest_is_cut()
    audit.reference_distances = [0.9, 0.7]
    assert audit.nearest_box() == boxes[0] and audit.nearest_is_cut()


@pytest.mark.slow
def test_a_tiny_face_near_the_edge_is_still_measured_at_the_attackers_box(face_models):
    """The cameraman's 30 px profile, his photo cropped to 1 px left of his face's box:
    the frame clips his 1.25x box by a few pixels, which leaves most of it, so it is
    still measured (it is the view that holds his photo back), as it is away from the edge."""
    import dataclasses

    from p3m.privacy.faces import alignments

    tiny = _tiny_cameraman()
    (face,) = detect_faces(tiny)
    shift = face.box[0] - 1
    near = np.ascontiguousarray(tiny[:, shift:])
    moved = dataclasses.replace(face, box=(1, face.box[1], face.box[2] - shift, face.box[3]), mesh=None, keypoints=None)
    assert len(alignments(tiny, face)) == len(alignments(near, moved)) == 2


@pytest.mark.slow
def test_a_face_cut_at_the_chin_is_measured_where_its_eyes_show(face_models, astronaut):
    """Her face with the frame's bottom edge 40% of the way down its box (forehead and
    eyes in the frame, 37 px of a 90 px box): an attacker frames what shows, so the
    clipped 1.25x box (a third of it in the frame) is a view of her, as for a face cut
    down the middle."""
    import dataclasses

    from p3m.privacy.faces import alignments

    face = next(f for f in detect_faces(astronaut) if f.audited)
    bottom = face.box[1] + (face.box[3] - face.box[1]) * 2 // 5 + 1
    cut = np.ascontiguousarray(astronaut[:bottom])
    moved = dataclasses.replace(face, mesh=None, keypoints=None, landmarks=None)
    assert bottom - face.box[1] < 40 and len(alignments(cut, moved)) == 2  # its own, and the clipped box
