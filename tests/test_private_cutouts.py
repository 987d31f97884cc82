"""Private cut-outs: matting and face anonymization in one step, through every front end,
by the one per-image pipeline and the one fail-closed blur."""

from __future__ import annotations

import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image
from skimage import data

import p3m
from p3m.cli.main import main
from p3m.errors import HeldBackError, OutputError
from p3m.inference.engine import MattingEngine
from p3m.jobs.matte import matte_files
from p3m.jobs.results import Status
from p3m.options import FaceBlurOptions, MatteOptions
from p3m.pipeline import matte_image
from p3m.serve.app import create_app
from serving import running

pytest.importorskip("dlib")


class PortraitEngine(MattingEngine):
    """Opaque person everywhere, with a soft band (hair) running down through the face."""

    description = "portrait (test)"

    def predict(self, images):
        alphas = []
        for image in images:
            alpha = np.ones(image.shape[:2], np.float32)
            alpha[:, image.shape[1] // 2 - 60: image.shape[1] // 2 - 52] = 0.5
            alphas.append(alpha)
        return alphas


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut()


def _save(array, path):
    Image.fromarray(array).save(path)
    return path


def test_the_pipeline_blurs_faces_keeps_transition_pixels_and_reports_the_audit(astronaut):
    engine = PortraitEngine()
    plain = matte_image(engine, astronaut, MatteOptions(save=("cutout",)))
    private = matte_image(engine, astronaut, MatteOptions(save=("cutout",), anonymize=True))
    assert plain.privacy is None and not private.held_back
    audit = private.privacy.audit
    assert audit.identity_matches == 0 and audit.redetected == 0 and audit.changed_transition_pixels == 0
    assert np.array_equal(private.alpha, plain.alpha)  # the alpha comes from the original photo
    changed = (private.outputs["cutout"] != plain.outputs["cutout"]).any(axis=2)
    assert changed.sum() > 1000  # the face is blurred in the cut-out
    outside = np.ones(changed.shape, bool)
    for face in private.privacy.detected:  # (HOG alone here: the patch on the suit is a weak face too)
        left, top, right, bottom = face.box
        outside[max(0, top - 80): bottom + 40, max(0, left - 40): right + 40] = False
    assert not (changed & outside).any()  # nothing away from the faces changes


class NearlyOpaqueEngine(MattingEngine):
    """Everything 0.999: opaque once written as 8 bits, so nothing is a transition pixel."""

    def predict(self, images):
        return [np.full(image.shape[:2], 0.999, np.float32) for image in images]


def test_transition_pixels_are_those_of_the_alpha_as_written(astronaut):
    result = matte_image(NearlyOpaqueEngine(), astronaut, MatteOptions(save=("alpha", "cutout"), anonymize=True))
    assert not result.held_back and (result.outputs["alpha"] == 255).all()
    assert result.privacy.audit.identity_matches == 0  # the face was blurred, not kept as "transition"


def test_a_private_composite_blurs_faces_on_its_background_image_too(astronaut, tmp_path):
    from serving import ConstantEngine

    backdrop = np.ascontiguousarray(astronaut[:, ::-1])  # another face, on the background
    shown = matte_image(ConstantEngine(0.0), astronaut, MatteOptions(save=("composite",), background=backdrop))
    private = matte_image(ConstantEngine(0.0), astronaut, MatteOptions(save=("composite",), background=backdrop,
                                                                       anonymize=True))
    assert np.array_equal(shown.outputs["composite"], backdrop)  # alpha 0: the composite is the backdrop
    assert private.plate.status == "ok" and private.plate.audit.identity_matches == 0
    assert (private.outputs["composite"] != backdrop).any(axis=2).sum() > 1000
    assert private.privacy_dict()["background"]["status"] == "ok"
    _save(data.coffee(), tmp_path / "coffee.png")  # a backdrop without a face passes through unchanged
    plain = matte_image(ConstantEngine(0.0), astronaut, MatteOptions(save=("composite",), anonymize=True,
                                                                     background=str(tmp_path / "coffee.png")))
    assert plain.plate.status == "no-face-copied" and not plain.held_back


def test_remove_with_anonymize_and_its_held_back_error(astronaut):
    engine = PortraitEngine()
    cut = p3m.remove(astronaut, engine=engine, anonymize=True, strength="high")
    assert cut.mode == "RGBA" and cut.size == (512, 512)
    assert not np.array_equal(np.asarray(cut), np.asarray(p3m.remove(astronaut, engine=engine)))
    with pytest.raises(HeldBackError, match="no face found") as held:
        p3m.remove(data.coffee(), engine=engine, anonymize=True)
    assert held.value.privacy.status == "no-face"
    back_view = p3m.remove(data.coffee(), engine=engine, anonymize=True, allow_no_face=True)
    assert back_view.size == (600, 400)


def test_command_line_single_file_and_folder(tmp_path, astronaut, monkeypatch, capsys):
    import p3m.inference.factory as factory

    monkeypatch.setattr(factory, "open_engine", lambda *a, **k: PortraitEngine())
    photos = tmp_path / "photos"
    photos.mkdir()
    _save(astronaut, photos / "astro.png")
    _save(data.coffee(), photos / "coffee.png")
    assert main(["matte", str(photos / "astro.png"), "-o", str(tmp_path / "one.png"), "--anonymize"]) == 0
    assert "identity matches 0" in capsys.readouterr().err
    assert main(["matte", str(photos / "coffee.png"), "-o", str(tmp_path / "two.png"), "--anonymize"]) == 1
    err = capsys.readouterr().err
    assert "held back" in err and not (tmp_path / "two.png").exists()
    assert "coffee.png: no-face: no face found" in err  # its status first, as in a folder's line
    assert main(["matte", str(photos / "coffee.png"), "-o", str(tmp_path / "two.png")]) == 0  # a plain cut-out
    assert main(["matte", str(photos / "coffee.png"), "-o", str(tmp_path / "two.png"), "--anonymize",
                 "--overwrite"]) == 1
    assert not (tmp_path / "two.png").exists()  # replaced by nothing, not left unblurred
    out = tmp_path / "out"
    assert main(["matte", str(photos), "-o", str(out), "--save", "cutout,composite", "--background", "navy",
                 "--anonymize", "--strength", "high"]) == 1  # the coffee is held back
    err = capsys.readouterr().err
    assert "1 done" in err and "1 held back" in err and "identity matches 0" in err
    assert sorted(p.name for p in out.rglob("*.png")) == ["astro.png", "astro.png"]


def test_jobs_record_the_audit_and_never_reuse_outputs_made_without_it(tmp_path, astronaut):
    photos = tmp_path / "photos"
    photos.mkdir()
    _save(astronaut, photos / "astro.png")
    out = tmp_path / "out"
    assert matte_files(PortraitEngine(), [photos], out, MatteOptions(save=("cutout",))).done == 1
    private = MatteOptions(save=("cutout",), anonymize=FaceBlurOptions(strength="high"))
    with pytest.raises(OutputError, match="anonymize"):  # the plain cut-out must not count as done
        matte_files(PortraitEngine(), [photos], out, private)
    result = matte_files(PortraitEngine(), [photos], out, MatteOptions(save=("cutout",), anonymize=True,
                                                                        overwrite=True))
    (record,) = result.records
    assert record.status is Status.DONE and record.privacy["audit"]["identity_matches"] == 0
    assert record.to_dict()["privacy"]["status"] == "ok"


def test_outputs_made_without_the_blur_never_stay_beside_private_ones(tmp_path, astronaut):
    photos = tmp_path / "photos"
    photos.mkdir()
    _save(astronaut, photos / "astro.png")
    _save(data.coffee(), photos / "coffee.png")
    out = tmp_path / "out"
    plain = MatteOptions(save=("cutout", "composite"))
    assert matte_files(PortraitEngine(), [photos], out, plain).done == 2
    (out / ".p3m-matte.json").unlink()  # settings unknown (lost, or written by an older p3m)
    private = MatteOptions(save=("cutout", "composite"), anonymize=True)
    with pytest.raises(OutputError, match="anonymize unknown"):
        matte_files(PortraitEngine(), [photos], out, private)
    again = matte_files(PortraitEngine(), [photos], out, MatteOptions(save=("cutout", "composite"), anonymize=True,
                                                                       overwrite=True))
    assert [r.status for r in again.records] == [Status.DONE, Status.HELD_BACK]
    assert again.records[1].reason.startswith("no-face: no face found")  # as p3m anonymize words it
    assert sorted(p.name for p in out.rglob("*.png")) == ["astro.png", "astro.png"]  # coffee's plain outputs gone


def test_making_a_folder_private_removes_every_earlier_output_first(tmp_path, astronaut):
    """Outputs of kinds the private run does not make, and of inputs it does not reach (or
    an interrupted run), must not be skipped later as if they were private."""
    photos = tmp_path / "photos"
    photos.mkdir()
    _save(astronaut, photos / "a.png")
    _save(astronaut[:, ::-1], photos / "b.png")
    out = tmp_path / "out"
    assert matte_files(PortraitEngine(), [photos], out, MatteOptions(save=("cutout", "composite"))).done == 2
    plain_composite = (out / "composite" / "a.png").read_bytes()
    only_a = matte_files(PortraitEngine(), [photos / "a.png"], out,
                         MatteOptions(save=("cutout",), anonymize=True, overwrite=True))
    assert only_a.done == 1 and sorted(p.name for p in out.rglob("*.png")) == ["a.png"]
    later = matte_files(PortraitEngine(), [photos], out, MatteOptions(save=("cutout", "composite"), anonymize=True))
    assert [(r.status, r.reason) for r in later.records] == [(Status.DONE, ""), (Status.DONE, "")]
    assert all(r.privacy["audit"]["identity_matches"] == 0 for r in later.records)
    assert (out / "composite" / "a.png").read_bytes() != plain_composite


def test_the_service_takes_anonymize_and_fails_closed(astronaut):
    def png(array):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, "PNG")
        return buffer.getvalue()

    with running(create_app(PortraitEngine())) as url:
        ok = httpx.post(f"{url}/v1/matte", files={"image": ("a.png", png(astronaut))},
                        data={"anonymize": "true", "output": "composite", "background": "navy"}, timeout=120)
        held = httpx.post(f"{url}/v1/matte?anonymize=true", content=png(data.coffee()), timeout=120)
    assert ok.status_code == 200 and Image.open(io.BytesIO(ok.content)).mode == "RGB"
    privacy = json.loads(ok.headers["x-p3m-privacy"])
    assert privacy["status"] == "ok" and privacy["audit"]["identity_matches"] == 0
    assert held.status_code == 422 and held.json()["status"] == "no-face"
    assert "no face found" in held.json()["reason"]
