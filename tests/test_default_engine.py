"""The default engine: a verified model fetched from the registry, segmentation plus
closed-form matting, used by p3m matte and p3m benchmark when no P3M-Net is given."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data

from p3m.cli.main import main
from p3m.errors import CheckpointError
from p3m.inference.compose import cover
from p3m.weights.default_model import (
    FACE_MODELS,
    SHA256,
    check_default_model,
    check_model,
    default_model_path,
    face_models_installed,
)

pytestmark = pytest.mark.slow


@pytest.fixture()
def home(fetched_home, monkeypatch):
    monkeypatch.setenv("P3M_HOME", str(fetched_home))
    return fetched_home


def test_fetch_keeps_only_the_verified_models_and_their_licence(home):
    models = home / "models"
    assert sorted(p.name for p in models.iterdir()) == sorted(
        ["LICENSE-mediapipe.txt", "selfie_segmentation.tflite", "face_detection_short_range.tflite",
         "face_detection_full_range_sparse.tflite", "face_landmark.tflite",
         "LICENSE-facenet-pytorch.txt", "mtcnn-pnet.pt", "mtcnn-rnet.pt", "mtcnn-onet.pt"])
    assert "Apache License" in (models / "LICENSE-mediapipe.txt").read_text()
    assert "MIT License" in (models / "LICENSE-facenet-pytorch.txt").read_text()
    assert check_default_model() == default_model_path()
    assert all(check_model(model) == model.path() for model in FACE_MODELS)
    assert face_models_installed()
    assert len(SHA256) == 64


def test_a_tampered_model_is_refused(tmp_path, home):
    bad = tmp_path / "selfie_segmentation.tflite"
    bad.write_bytes(default_model_path().read_bytes()[:-1] + b"x")
    with pytest.raises(CheckpointError, match="SHA-256 does not match"):
        check_default_model(bad)
    with pytest.raises(CheckpointError, match="p3m weights fetch default"):
        check_default_model(tmp_path / "missing.tflite")


def test_default_engine_cuts_out_the_astronaut(home):
    from p3m.inference.default_engine import SegmentationMattingEngine

    engine = SegmentationMattingEngine()
    image = cover(data.astronaut(), 810, 540)
    (alpha,) = engine.predict([image])
    assert alpha.shape == (810, 540) and alpha.dtype == np.float32
    assert alpha[140:250, 160:270].mean() > 0.9  # her face (x 142-284, y 120-263 after the cover crop)
    assert alpha[:60, :60].mean() < 0.1  # the flag in the top-left corner
    soft = ((alpha > 0.05) & (alpha < 0.95)).mean()
    assert 0 < soft < 0.1  # a thin band of fractional alpha, not a hard mask


def test_matte_without_weights_uses_the_default_engine_and_says_so(home, tmp_path, capsys):
    Image.fromarray(cover(data.astronaut(), 300, 200)).save(tmp_path / "a.png")
    assert main(["matte", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--save", "alpha,cutout"]) == 0
    err = capsys.readouterr().err
    assert "default engine: MediaPipe selfie segmentation" in err and "a baseline, not P3M-Net" in err
    assert (tmp_path / "o" / "cutout" / "a.png").is_file()


def test_benchmark_has_a_default_engine_row(home, tmp_path, capsys):
    from p3m.data.synthetic import write_synthetic_dataset

    root = write_synthetic_dataset(tmp_path / "d", train=0, val=1, size=(128, 96))
    assert main(["benchmark", "--data", str(root), "--engine", "default", "--out", str(tmp_path / "b"), "--fast"]) == 0
    assert "| default-engine |" in (tmp_path / "b" / "report.md").read_text()


def test_predict_alpha_takes_the_default_engine_and_any_image_input(home, tmp_path):
    import p3m
    from p3m.inference.default_engine import SegmentationMattingEngine

    engine = SegmentationMattingEngine()
    image = cover(data.astronaut(), 300, 200)
    Image.fromarray(image).convert("L").save(tmp_path / "gray.png")
    alpha = p3m.predict_alpha(engine, image)
    assert alpha.shape == (300, 200)
    assert p3m.predict_alpha(engine, tmp_path / "gray.png").shape == (300, 200)  # grayscale converted
    with pytest.raises(p3m.P3MError, match="zero size"):
        p3m.predict_alpha(engine, np.zeros((0, 5, 3), np.uint8))


def test_the_default_engine_prints_no_runtime_noise(home, tmp_path, capfd):
    """LiteRT's C++ INFO line about its CPU delegate (issue #20) does not reach the terminal."""
    from skimage import data

    Image.fromarray(data.astronaut()[::4, ::4]).save(tmp_path / "a.png")
    assert main(["matte", str(tmp_path / "a.png"), "-o", str(tmp_path / "out")]) == 0
    err = capfd.readouterr().err
    assert "XNNPACK" not in err and "INFO:" not in err and "1 done" in err


def test_a_photo_on_the_default_engine_never_imports_torch(home, tmp_path):
    """`p3m matte photo -o cut.png` with torch installed but no P3M-Net weights: the
    engine is chosen without importing torch (1.4 s of the 1.5 s budget, issue 29)."""
    import subprocess
    import sys

    Image.fromarray(cover(data.astronaut(), 300, 200)).save(tmp_path / "a.png")
    script = ("import sys; from p3m.cli.main import main; "
              f"rc = main(['matte', {str(tmp_path / 'a.png')!r}, '-o', {str(tmp_path / 'cut.png')!r}]); "
              "print(rc, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.stdout.split() == ["0", "False"], done.stderr
    assert (tmp_path / "cut.png").is_file()


def test_pymatting_kernels_are_announced_once_per_environment_then_load_silently(home, tmp_path, capsys):
    """The first import in an environment says it prepares the kernels (they compile then:
    45-56 s in a fresh venv); `p3m weights fetch` does it up front. A second process
    says nothing and compiles no kernel: every one comes from numba's cache."""
    import os
    import subprocess
    import sys

    from p3m.inference.kernels import NOTICE

    env = {**os.environ, "P3M_HOME": str(tmp_path / "home")}  # no note yet for this environment
    script = ("from p3m.inference.kernels import import_pymatting, compile_counts; "
              "print(*compile_counts(import_pymatting()))")
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, env=env)
            for _ in range(2)]
    assert NOTICE in runs[0].stderr and NOTICE not in runs[1].stderr
    hits, compiled = map(int, runs[1].stdout.split())
    assert hits > 20 and compiled == 0
    assert main(["weights", "fetch"]) == 0  # "default" by default, now with the kernels' line
    assert "pymatting's" in capsys.readouterr().out


def test_workers_starting_at_once_all_get_the_whole_of_pymatting(tmp_path):
    """Folder runs start several images at once: each worker must wait for the one
    import, not take the half-imported module (it failed folder runs with 'partially
    initialized module')."""
    import os
    import subprocess
    import sys

    script = ("import sys, threading, time; from p3m.inference.kernels import import_pymatting\n"
              "got = []\n"
              "def work(): got.append(hasattr(import_pymatting(lambda line: None), 'estimate_foreground_ml'))\n"
              "first = threading.Thread(target=work); first.start()\n"
              "while 'pymatting' not in sys.modules: time.sleep(0.001)\n"  # the first import is under way
              "others = [threading.Thread(target=work) for _ in range(3)]\n"
              "[t.start() for t in others]; [t.join() for t in [first, *others]]\n"
              "print(got)")
    env = {**os.environ, "P3M_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, env=env)
    assert done.stdout.strip() == "[True, True, True, True]", done.stderr[-500:]


def test_the_default_engine_has_its_working_size_and_band_everywhere(home, published_checkpoint):
    """--work-size / --band (and the same keywords in Python and the service) reach the
    default engine and change its matte; P3M-Net refuses them with one line."""
    import httpx

    import p3m
    from p3m.errors import InapplicableOptionError
    from p3m.serve.app import create_app
    from serving import ConstantEngine, running

    image = cover(data.astronaut(), 300, 200)
    engine = p3m.open_engine("default", work_size=160, band=0.05)
    assert (engine.work_size, engine.band) == (160, 0.05) and "at 160 px" in engine.description
    coarse, fine = p3m.matte(image, engine="default", work_size=96), p3m.matte(image, engine="default", work_size=300)
    assert np.abs(coarse - fine).mean() > 0.002  # the knob does something
    with pytest.raises(InapplicableOptionError, match="work_size applies to the default engine"):
        p3m.open_engine(published_checkpoint, work_size=256)
    Image.fromarray(image).save(buffer := __import__("io").BytesIO(), format="PNG")
    with running(create_app(p3m.open_engine("default"))) as url:
        ok = httpx.post(f"{url}/v1/matte?output=alpha&work_size=96", content=buffer.getvalue(), timeout=60)
        bad = httpx.post(f"{url}/v1/matte?work_size=10", content=buffer.getvalue(), timeout=60)
        over = httpx.post(f"{url}/v1/matte?work_size=2000", content=buffer.getvalue(), timeout=60)
        mixed = httpx.post(f"{url}/v1/matte?work_size=256&method=resize", content=buffer.getvalue(), timeout=60)
    assert over.status_code == 400 and "over this service's limit of 1024" in over.json()["error"]
    assert mixed.status_code == 400 and "has no strategies" in mixed.json()["error"]
    served = np.asarray(Image.open(__import__("io").BytesIO(ok.content))).astype(np.float32) / 255
    assert ok.status_code == 200 and np.abs(served - coarse).max() <= 1 / 255 + 1e-6
    assert bad.status_code == 400 and "work_size" in bad.json()["error"]
    with running(create_app(ConstantEngine(0.5))) as url:
        refused = httpx.post(f"{url}/v1/matte?band=0.05", content=buffer.getvalue(), timeout=60)
    assert refused.status_code == 400 and "settings of the default engine" in refused.json()["error"]


def test_a_photo_without_a_face_is_written_with_a_warning(home, tmp_path, capsys):
    """A cat: the person segmentation scores 91% of it as a person, so the cut-out is not
    empty; no face is found, so the record, the command line, the service and Python say
    so (the output is still written); the astronaut gets no warning."""
    import io
    import warnings

    import httpx

    import p3m
    from p3m.jobs.matte import MatteOptions, matte_files
    from p3m.serve.app import create_app
    from serving import running

    (tmp_path / "in").mkdir()
    Image.fromarray(data.chelsea()).save(tmp_path / "in" / "cat.png")
    Image.fromarray(data.astronaut()).save(tmp_path / "in" / "astronaut.png")
    result = matte_files(p3m.open_engine("default"), [tmp_path / "in"], tmp_path / "out", MatteOptions())
    by_name = {r.name.rsplit("/", 1)[-1].rsplit(".", 1)[0]: r for r in result.records}
    assert result.ok and by_name["cat"].warning.startswith("no face found") and not by_name["astronaut"].warning
    assert "1 to review (no face found)" in result.line() and by_name["cat"].to_dict()["warning"]
    assert main(["matte", str(tmp_path / "in" / "cat.png"), "-o", str(tmp_path / "cat.png"), "-q"]) == 0
    assert "warning:" in capsys.readouterr().err and (tmp_path / "cat.png").is_file()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p3m.remove(data.chelsea(), engine="default")
    assert any("no face found" in str(w.message) for w in caught)
    buffer = io.BytesIO()
    Image.fromarray(data.chelsea()).save(buffer, format="PNG")
    with running(create_app(p3m.open_engine("default"))) as url:
        answer = httpx.post(f"{url}/v1/matte", content=buffer.getvalue(), timeout=60)
    assert answer.status_code == 200 and answer.headers["X-P3M-Warning"].startswith("no face found")
    from p3m.pipeline import person_warning

    assert person_warning(np.zeros((1, 20000, 3), np.uint8)).startswith("no face found")  # shrunk, never to 0 px
