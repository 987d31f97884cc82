"""Matting folders (``p3m.jobs.matte.matte_files`` and ``p3m matte``): naming, outputs,
resume, bad files, statuses."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

import p3m
from p3m.cli.main import main
from p3m.colours import parse_colour
from p3m.inference.compose import Background, composite, cutout_rgba
from p3m.jobs.matte import MatteOptions, matte_files
from p3m.jobs.results import Status


@pytest.fixture(scope="module")
def weights(tmp_path_factory, reference_model):
    return p3m.save_model(reference_model, tmp_path_factory.mktemp("w") / "ref.safetensors")


@pytest.fixture(scope="module")
def engine(weights):
    return p3m.open_engine(weights, method="resize")


def _photo(h=70, w=50, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture()
def photo_tree(tmp_path):
    root = tmp_path / "photos"
    (root / "2024" / "trip").mkdir(parents=True)
    Image.fromarray(_photo()).save(root / "a.jpg")
    Image.fromarray(_photo(seed=1)).convert("L").save(root / "2024" / "gray.png")
    Image.fromarray(_photo(seed=2)).save(root / "2024" / "trip" / "b.png")
    return root


def test_folder_outputs_mirror_the_tree(photo_tree, tmp_path, weights, capsys):
    out = tmp_path / "out"
    assert main(["matte", str(photo_tree), "-o", str(out), "--checkpoint", str(weights),
                 "--save", "alpha,cutout,composite", "--background", "#00ff00", "--method", "resize"]) == 0
    for kind in ("alpha", "cutout", "composite"):
        for rel in ("a.png", "2024/gray.png", "2024/trip/b.png"):
            assert (out / kind / rel).is_file(), f"{kind}/{rel}"
    alpha = np.asarray(Image.open(out / "alpha" / "a.png"))
    cut = Image.open(out / "cutout" / "a.png")
    assert alpha.shape == (70, 50) and alpha.dtype == np.uint8
    assert cut.mode == "RGBA" and cut.size == (50, 70)
    np.testing.assert_array_equal(np.asarray(cut)[..., 3], alpha)
    err = capsys.readouterr().err
    assert "engine p3mnet-r34" in err and "3 done, 0 skipped, 0 failed" in err
    assert not list(out.rglob(".*.tmp"))


def test_rerun_skips_existing_outputs_unless_overwrite(photo_tree, tmp_path, engine):
    out = tmp_path / "out"
    first = matte_files(engine, [photo_tree], out)
    assert (first.done, first.skipped, first.failed) == (3, 0, 0) and first.ok
    (out / "alpha" / "a.png").unlink()  # as if the run had been killed before this one
    second = matte_files(engine, [photo_tree], out)
    assert {r.name.split("/")[-1]: r.status for r in second.records} == {
        "a.jpg": Status.DONE, "gray.png": Status.SKIPPED, "b.png": Status.SKIPPED}
    assert matte_files(engine, [photo_tree], out, MatteOptions(overwrite=True)).done == 3
    later = (out / "alpha" / "a.png").stat().st_mtime_ns + 10**9
    os.utime(photo_tree / "a.jpg", ns=(later, later))  # a.jpg replaced after its outputs were written
    third = matte_files(engine, [photo_tree], out)
    assert {r.name.split("/")[-1]: r.status for r in third.records} == {
        "a.jpg": Status.DONE, "gray.png": Status.SKIPPED, "b.png": Status.SKIPPED}
    as_json = json.loads(json.dumps(second.to_dict()))  # what a service would return
    assert as_json["totals"] == {"done": 1, "skipped": 2, "failed": 0, "held-back": 0}
    assert {item["status"] for item in as_json["items"]} == {"done", "skipped"}
    assert as_json["items"][0]["outputs"]["alpha"].endswith(".png")


def test_bad_files_are_recorded_and_the_batch_goes_on(photo_tree, tmp_path, engine):
    (photo_tree / "notes.jpg").write_text("not an image")
    Image.fromarray(_photo(300, 300)).save(photo_tree / "huge.png")
    (photo_tree / "cut.jpg").write_bytes((photo_tree / "a.jpg").read_bytes()[:200])
    out = tmp_path / "out"
    result = matte_files(engine, [photo_tree, tmp_path / "missing.jpg"], out, MatteOptions(max_pixels=20000))
    reasons = {r.name.split("/")[-1]: r.reason for r in result.records if r.status == Status.FAILED}
    assert "not an image file" in reasons["notes.jpg"]
    assert "300x300" in reasons["huge.png"] and "--max-pixels" in reasons["huge.png"]
    assert "cannot decode image" in reasons["cut.jpg"]
    assert reasons["missing.jpg"] == "no such file or directory"
    assert (result.done, result.failed, result.ok) == (3, 4, False)
    assert {p.name for p in (out / "alpha").rglob("*.png")} == {"a.png", "gray.png", "b.png"}
    assert {r.name for r in result.records if r.status == Status.DONE} == {
        str(photo_tree / "a.jpg"), str(photo_tree / "2024" / "gray.png"), str(photo_tree / "2024" / "trip" / "b.png")}


def test_cli_prints_one_line_per_failure_and_exits_1(photo_tree, tmp_path, weights, capsys):
    (photo_tree / "notes.jpg").write_text("not an image")
    code = main(["matte", str(photo_tree), "-o", str(tmp_path / "out"), "--checkpoint", str(weights),
                 "--method", "resize"])
    err = capsys.readouterr().err
    assert code == 1 and "notes.jpg: not an image file" in err and "3 done, 0 skipped, 1 failed" in err
    assert "Traceback" not in err


def test_glob_inputs_and_name_collisions(tmp_path, engine):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(_photo()).save(src / "x.png")
    Image.fromarray(_photo(seed=3)).save(src / "x.jpg")
    out = tmp_path / "out"
    result = matte_files(engine, [str(src / "*.*")], out)
    assert result.failed == 1 and "already taken" in result.failures[0].reason and (out / "alpha" / "x.png").is_file()


def test_missing_checkpoint_is_one_line(tmp_path, capsys):
    Image.fromarray(_photo()).save(tmp_path / "a.png")
    assert main(["matte", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--checkpoint", str(tmp_path / "w.pth")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"p3m: error: {tmp_path / 'w.pth'}: no such file"]


def test_sixteen_bit_alpha(tmp_path, weights):
    Image.fromarray(_photo()).save(tmp_path / "a.png")
    out = tmp_path / "o"
    assert main(["matte", str(tmp_path / "a.png"), "-o", str(out), "--checkpoint", str(weights), "--alpha-16bit"]) == 0
    alpha = np.asarray(Image.open(out / "alpha" / "a.png"))
    assert alpha.dtype == np.uint16 and alpha.shape == (70, 50)


# -- compositing -----------------------------------------------------------------------
def _mixed_edge():
    """A red person on green, with a soft edge: the photo mixes both colours there."""
    alpha = np.tile(np.linspace(0, 1, 40, dtype=np.float32), (30, 1))
    fg, bg = np.array([220, 30, 30], np.float32), np.array([20, 200, 20], np.float32)
    image = np.round(alpha[..., None] * fg + (1 - alpha[..., None]) * bg).astype(np.uint8)
    return image, alpha


def test_cutout_uses_the_estimated_foreground_not_the_mixed_colours():
    image, alpha = _mixed_edge()
    cut = cutout_rgba(image, alpha)
    edge = (alpha > 0.2) & (alpha < 0.8)
    assert cut[..., 0][edge].mean() > 180 and cut[..., 1][edge].mean() < 80  # red, no green halo
    assert image[..., 1][edge].mean() > 60  # the photo itself is mixed there
    np.testing.assert_array_equal(cut[..., 3], np.round(alpha * 255).astype(np.uint8))


def test_premultiplied_cutout_is_image_times_alpha():
    image, alpha = _mixed_edge()
    cut = cutout_rgba(image, alpha, premultiplied=True)
    np.testing.assert_array_equal(cut[..., :3], np.round(image * alpha[..., None]).astype(np.uint8))


def test_composite_on_colour_image_and_blur(tmp_path):
    image, alpha = _mixed_edge()
    blue = composite(image, alpha, Background("chroma-blue").for_image(image))
    assert blue[:, 0].tolist() == [[0, 71, 187]] * 30  # alpha 0: pure background
    Image.fromarray(np.full((10, 200, 3), 77, np.uint8)).save(tmp_path / "bg.png")
    covered = Background(str(tmp_path / "bg.png")).for_image(image)
    assert covered.shape == image.shape and (covered == 77).all()
    blurred = Background("blur").for_image(image)
    assert blurred.shape == image.shape and blurred.std() < image.std()
    assert parse_colour("12,34,56") == (12, 34, 56) and parse_colour("#ff0000") == (255, 0, 0)
    # CSS colours as Pillow reads them (issue #20: navy, #0f0 and rgb() were refused)
    assert parse_colour("navy") == (0, 0, 128) and parse_colour("#0f0") == (0, 255, 0)
    assert parse_colour("rgb(0, 255, 0)") == (0, 255, 0) and parse_colour("Blue") == (0, 0, 255)
    assert parse_colour("chroma-green") == (0, 177, 64) and parse_colour("nonsense") is None
    with pytest.raises(p3m.P3MError, match="not a CSS colour"):
        Background("no-such-file.png")


# -- one photo in, one file out ----------------------------------------------------------------
@pytest.mark.parametrize("name, save, mode", [("cut.png", None, "RGBA"), ("cut.webp", None, "RGBA"),
                                              ("on_white.jpg", None, "RGB"), ("alpha.png", "alpha", "L")])
def test_one_photo_to_one_file_by_extension_or_save(tmp_path, weights, capsys, name, save, mode):
    Image.fromarray(_photo()).save(tmp_path / "photo.jpg")
    extra = ["--save", save] if save else []
    assert main(["matte", str(tmp_path / "photo.jpg"), "-o", str(tmp_path / name), "--checkpoint", str(weights),
                 "--method", "resize", *extra]) == 0
    with Image.open(tmp_path / name) as written:
        assert written.mode == mode and written.size == (50, 70)
    assert not (tmp_path / name).is_dir()


def test_stdin_to_stdout(tmp_path, weights):
    import io
    import subprocess
    import sys

    buffer = io.BytesIO()
    Image.fromarray(_photo()).save(buffer, "JPEG")
    done = subprocess.run([sys.executable, "-m", "p3m", "matte", "-", "-o", "-", "--checkpoint", str(weights),
                           "--method", "resize"], input=buffer.getvalue(), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    with Image.open(io.BytesIO(done.stdout)) as cutout:
        assert cutout.format == "PNG" and cutout.mode == "RGBA" and cutout.size == (50, 70)


@pytest.mark.parametrize("argv, message, status", [  # 2: a usage error, as argparse's own; 1: a refused output
    (["a.png", "b.png", "-o", "one.png"], "is one file: give one input image", 2),
    (["a.png", "-o", "cut.jpg", "--save", "cutout"], "a JPEG has no transparency", 2),
    (["a.png", "-o", "x.png", "--save", "alpha,cutout"], "choose one --save kind", 2),
    (["-", "-o", "folder"], "input - (stdin) needs -o FILE", 2),
    (["a.png", "-o", "a.png"], "would replace the input", 1),
])
def test_single_file_mistakes_are_one_line(tmp_path, weights, capsys, monkeypatch, argv, message, status):
    monkeypatch.chdir(tmp_path)
    for name in ("a.png", "b.png"):
        Image.fromarray(_photo()).save(tmp_path / name)
    assert main(["matte", *argv, "--checkpoint", str(weights), "--method", "resize"]) == status
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
