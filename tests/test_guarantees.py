"""The promises of docs/guarantees.md, each reproduced the way issue #13 found it broken:
outputs stay inside the output folder and never replace an input, files get the
user's umask, options are checked when parsed, anonymization fails closed on its own
audit, mattes are matched by relative path, reports accumulate, bad input is one line."""

from __future__ import annotations

import importlib
import json
import math
import os
import stat

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

import p3m
from p3m.cli.main import main
from p3m.inference.engine import MattingEngine


class ConstantEngine(MattingEngine):
    """A stand-in engine (instant): the promises here are about files, not mattes."""

    description = "constant 0.5 (test)"

    def __init__(self, value: float = 0.5) -> None:
        self.value = value

    def predict(self, images):
        return [np.full(image.shape[:2], self.value, np.float32) for image in images]


@pytest.fixture()
def constant_engine(monkeypatch):
    """``p3m matte`` on the command line runs the constant engine."""
    import p3m.inference.factory as factory

    monkeypatch.setattr(factory, "open_engine", lambda spec="auto", **options: ConstantEngine())
    return ConstantEngine()


def _photo(path, seed=0, size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return path


def _snapshot(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_dot_dot_in_a_glob_cannot_write_outside_or_onto_an_input(tmp_path, constant_engine, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in" / "sub" / "d").mkdir(parents=True)
    victim = _photo(tmp_path / "secret" / "victim.png")
    before = victim.read_bytes()
    assert main(["matte", "in/sub/*/../../../secret/*.png", "-o", "out"]) == 0
    assert victim.read_bytes() == before
    assert (tmp_path / "out" / "alpha" / "victim.png").is_file()  # the name kept, inside the output folder
    assert {p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*") if p.is_file()} == {"secret", "out"}


def test_an_output_folder_inside_the_input_folder_is_never_read_back(tmp_path, constant_engine, capsys):
    nest = tmp_path / "nest"
    _photo(nest / "a.png")
    _photo(nest / "b.png", 1)
    for _ in range(3):
        assert main(["matte", str(nest), "-o", str(nest / "out")]) == 0
    assert sorted(p.name for p in (nest / "out" / "alpha").rglob("*.png")) == ["a.png", "b.png"]
    files = _snapshot(tmp_path)
    assert main(["matte", str(nest), "-o", str(nest / "out")]) == 0
    assert _snapshot(tmp_path) == files, "a second identical run adds nothing"


@pytest.mark.parametrize("kind", ["alpha", "cutout"])
def test_an_input_inside_the_output_folder_is_refused_and_kept(tmp_path, constant_engine, capsys, kind):
    d = tmp_path / "D"
    originals = [_photo(d / kind / f"{name}.png", i) for i, name in enumerate("xy")]
    before = {p: p.read_bytes() for p in originals}
    assert main(["matte", str(d / kind), "-o", str(d), "--overwrite", "--save", kind]) == 1
    assert {p: p.read_bytes() for p in originals} == before
    err = capsys.readouterr().err
    assert f"{d / kind}: is inside the output folder {d}" in err and "Traceback" not in err
    assert all(p.is_file() for p in originals)


@pytest.mark.parametrize("argv, message", [
    (["--batch-size", "0"], "--batch-size: batch_size must be a whole number from 1 to 4096; got '0'"),
    (["--batch-size", "-3"], "must be a whole number from 1"),
    (["--max-pixels", "nan"], "--max-pixels: max_pixels must be a whole number at least 1; got 'nan'"),
    (["--max-size", "0"], "--max-size: max_size must be a whole number from 32 to 100000; got '0'"),
    (["--workers", "-2"], "--workers: workers must be a whole number from 1 to 256; got '-2'"),
    (["--workers", "1.5"], "--workers: workers must be a whole number from 1 to 256; got '1.5'"),
])
def test_matte_options_are_checked_when_parsed(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(["matte", str(tmp_path), "-o", str(tmp_path / "o"), *argv])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_anonymize_options_are_checked_when_parsed(tmp_path, capsys):
    for argv, message in ((["--jpeg-quality", "500"], "from 1 to 100"), (["--workers", "0"], "from 1 to 256"),
                          (["--sigma-scale", "0"], "above 0")):
        with pytest.raises(SystemExit):
            main(["anonymize", str(tmp_path), "-o", str(tmp_path / "o"), *argv])
        assert message in capsys.readouterr().err


def test_files_get_the_users_umask(tmp_path, constant_engine):
    from p3m.jobs.matte import MatteOptions, matte_files
    from p3m.utils import files

    assert files._MODE == 0o666 & ~files._umask()
    old = os.umask(0o022)
    try:
        _photo(tmp_path / "in" / "a.png")
        matte_files(constant_engine, [tmp_path / "in"], tmp_path / "out", MatteOptions(save=("alpha", "cutout")))
    finally:
        os.umask(old)
    for path in (tmp_path / "out").rglob("*.png"):
        assert stat.S_IMODE(path.stat().st_mode) == files._MODE, path


def test_stale_temporaries_of_a_killed_run_are_removed(tmp_path):
    from p3m.io.writers import write_image

    target = tmp_path / "a.png"
    stale = tmp_path / ".a.png.abcd1234.tmp"
    stale.write_bytes(b"half a file")
    other = tmp_path / ".b.png.abcd1234.tmp"
    other.write_bytes(b"another target's")
    write_image(target, np.zeros((2, 2), np.uint8))
    assert target.is_file() and not stale.exists() and other.exists()


def test_an_output_that_is_a_file_is_one_line_before_any_work(tmp_path, constant_engine, capsys):
    _photo(tmp_path / "small" / "a.png")
    (tmp_path / "outfile.txt").write_text("x")
    assert main(["matte", str(tmp_path / "small"), "-o", str(tmp_path / "outfile.txt")]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"p3m: error: {tmp_path / 'outfile.txt'}: exists and is not a folder; the output folder must be a folder")


def test_changed_settings_do_not_silently_keep_old_outputs(tmp_path, constant_engine, capsys):
    _photo(tmp_path / "in" / "a.png")
    args = ["matte", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--save", "composite"]
    assert main(args + ["--background", "blur"]) == 0
    assert main(args + ["--background", "#00ff00"]) == 1
    assert "background 'blur' -> '#00ff00'" in capsys.readouterr().err
    assert main(args + ["--background", "#00ff00", "--overwrite"]) == 0
    assert np.asarray(Image.open(tmp_path / "out" / "composite" / "a.png"))[0, 0, 1] > 100  # the new green


def test_a_one_pixel_image_gets_every_output(tmp_path, constant_engine):
    from p3m.jobs.matte import MatteOptions, matte_files

    _photo(tmp_path / "in" / "dot.png", size=(1, 1))
    result = matte_files(constant_engine, [tmp_path / "in"], tmp_path / "out",
                         MatteOptions(save=("alpha", "cutout", "composite")))
    assert result.done == 1 and len(list((tmp_path / "out").rglob("dot.png"))) == 3


def test_non_finite_alphas_fail_their_image_and_write_nothing(tmp_path):
    from p3m.jobs.matte import matte_files

    _photo(tmp_path / "in" / "a.png")
    result = matte_files(ConstantEngine(math.nan), [tmp_path / "in"], tmp_path / "out")
    assert result.failed == 1 and "non-finite" in result.records[0].reason
    assert not list((tmp_path / "out").rglob("*.png"))


def test_nan_weights_fail_each_image(tmp_path, reference_model):
    model = p3m.build_model("p3mnet-r34")
    model.load_state_dict(reference_model.state_dict())
    with torch.no_grad():
        model.decoder_final_l.bias.fill_(float("nan"))
    from p3m.jobs.matte import matte_files

    _photo(tmp_path / "in" / "a.png", size=(64, 64))
    result = matte_files(p3m.open_engine(model.eval(), method="resize"), [tmp_path / "in"], tmp_path / "out")
    assert result.failed == 1 and "non-finite" in result.failures[0].reason


def test_non_finite_predictions_are_refused_per_image_and_the_json_stays_valid(tmp_path, capsys):
    gt = np.full((8, 8), 200, np.uint8)
    for folder in ("pred", "gt"):
        (tmp_path / folder).mkdir()
        Image.fromarray(gt).save(tmp_path / folder / "good.png")
    Image.fromarray(gt).save(tmp_path / "gt" / "bad.tif")
    Image.fromarray(np.full((8, 8), np.nan, np.float32)).save(tmp_path / "pred" / "bad.tif")
    code = main(["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--fast",
                 "--json", str(tmp_path / "m.json")])
    assert code == 1 and "bad: prediction holds non-finite values" in capsys.readouterr().err
    report = json.loads((tmp_path / "m.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert report["count"] == 1 and report["mean"]["SAD"] == 0.0


@pytest.mark.parametrize("metadata, problem", [("{not json", "not valid JSON"), ("[1, 2]", "not an object"),
                                               ('{"arch": 5}', "not an object with an 'arch' name"),
                                               ('{"arch": "p3mnet-r34", "tfi": "rm -rf"}', "expected true/false"),
                                               ('{"arch": "p3mnet-r34", "gpu": true}', "does not take"),
                                               ('{"arch": "resnet50"}', "unknown architecture 'resnet50'")])
def test_crafted_safetensors_metadata_is_one_line_and_skipped_by_the_store(tmp_path, monkeypatch, capsys,
                                                                           metadata, problem):
    from safetensors.torch import save_file

    monkeypatch.setenv("P3M_HOME", str(tmp_path / "home"))
    bad = tmp_path / "home" / "weights" / "crafted.safetensors"
    bad.parent.mkdir(parents=True)
    save_file({"x": torch.zeros(1)}, str(bad), metadata={"p3m.arch_config": metadata})
    assert main(["convert", str(bad), str(tmp_path / "o.safetensors")]) == 1
    assert problem in capsys.readouterr().err
    assert main(["weights", "list"]) == 0
    err = capsys.readouterr().err
    assert f"skipped {bad}" in err and problem in err and "Traceback" not in err


def test_one_line_for_outputs_that_cannot_be(tmp_path, monkeypatch, capsys):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "pred").mkdir()
    (tmp_path / "adir").mkdir()
    cases = [(["anonymize", str(tmp_path), "-o", str(tmp_path / "afile")], "exists and is not a folder"),
             (["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "pred"), "--json",
               str(tmp_path / "adir")], "is a folder; the --json file must be a file name"),
             (["train", "--data", str(tmp_path), "--out", str(tmp_path / "afile")], "exists and is not a folder")]
    for argv, message in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    monkeypatch.setenv("P3M_HOME", str(tmp_path / "afile"))
    assert main(["weights", "fetch", "default"]) == 1
    assert "is a file, not a folder" in capsys.readouterr().err


def test_benchmark_row_names_cannot_leave_the_output_folder(tmp_path, capsys):
    assert main(["benchmark", "--data", str(tmp_path), "--checkpoint", "../../x=w.pth", "--out", str(tmp_path / "b")]) == 2
    assert "--checkpoint name '../../x'" in capsys.readouterr().err


def test_globs_with_double_star_do_not_follow_symlink_loops(tmp_path, constant_engine):
    from p3m.jobs.matte import matte_files

    _photo(tmp_path / "mix" / "a" / "x.png")
    (tmp_path / "mix" / "a" / "loop").symlink_to(tmp_path / "mix")
    result = matte_files(constant_engine, [str(tmp_path / "mix" / "**" / "*.png")], tmp_path / "out")
    assert [r.name for r in result.records] == [str(tmp_path / "mix" / "a" / "x.png")]


def test_the_progress_counter_never_passes_the_total(tmp_path, constant_engine, capsys):
    _photo(tmp_path / "in" / "a.png")
    (tmp_path / "in" / "b.png").write_text("broken")
    assert main(["matte", str(tmp_path / "in"), str(tmp_path / "missing"), "-o", str(tmp_path / "out")]) == 1
    counters = [line.split("]")[0] for line in capsys.readouterr().err.splitlines() if line.startswith("[")]
    assert counters and all(int(c[1:].split("/")[0]) <= int(c.split("/")[1]) for c in counters)


# -- anonymization ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut()


def test_a_weak_strength_is_strengthened_until_the_face_is_not_recognised(tmp_path, astronaut):
    from p3m.jobs.anonymize import AnonymizeOptions, anonymize_files
    from p3m.privacy.anonymize import STRENGTHS, Outcome

    Image.fromarray(astronaut).save(tmp_path / "astro.png")
    report = anonymize_files([tmp_path / "astro.png"], tmp_path / "out", AnonymizeOptions(strength="low"))
    record = report.records[0]
    assert record.outcome is Outcome.OK and record.sigma_scale > STRENGTHS["low"]
    assert record.audit.identity_matches == 0 and record.audit.redetected == 0
    assert report.totals()["identity_matches"] == 0


def test_an_image_still_identifiable_at_the_cap_is_held_back(tmp_path, astronaut, monkeypatch):
    import p3m.jobs.anonymize as job
    rule = importlib.import_module("p3m.privacy.anonymize")  # (p3m.privacy.anonymize is also the function)
    from p3m.jobs.results import Status
    from p3m.privacy.anonymize import Outcome

    monkeypatch.setattr(rule, "MAX_SIGMA_SCALE", 0.06)  # a cap too low to hide the face
    Image.fromarray(astronaut).save(tmp_path / "astro.png")
    report = job.anonymize_files([tmp_path / "astro.png"], tmp_path / "out", job.AnonymizeOptions(strength="low"))
    record = report.records[0]
    assert record.outcome is Outcome.IDENTIFIABLE and record.status is Status.HELD_BACK and not report.ok
    assert not (tmp_path / "out" / "blurred_image" / "astro.png").exists()
    assert report.totals()["identifiable"] == 1


def test_mattes_are_matched_by_relative_path_and_a_guess_is_an_error(tmp_path, astronaut):
    from p3m.jobs.anonymize import AnonymizeOptions, anonymize_files
    from p3m.privacy.anonymize import Outcome

    for folder in ("a", "b"):
        (tmp_path / "nested" / folder).mkdir(parents=True)
        Image.fromarray(astronaut).save(tmp_path / "nested" / folder / "x.png")
    flat = tmp_path / "alphas"
    flat.mkdir()
    Image.fromarray(np.full(astronaut.shape[:2], 255, np.uint8)).save(flat / "x.png")
    report = anonymize_files([tmp_path / "nested"], tmp_path / "out1", AnonymizeOptions(alpha_dir=flat))
    assert {r.outcome for r in report.records} == {Outcome.ERROR}
    assert all("ambiguous" in r.reason for r in report.records)
    # the tree p3m matte writes works as it is, given as the matte folder or its parent
    tree = tmp_path / "matte_out"
    for folder, corner in (("a", 255), ("b", 0)):  # opaque mattes that differ in one corner pixel
        (tree / "alpha" / folder).mkdir(parents=True)
        matte = np.full(astronaut.shape[:2], 255, np.uint8)
        matte[0, 0] = corner
        Image.fromarray(matte).save(tree / "alpha" / folder / "x.png")
    report = anonymize_files([tmp_path / "nested"], tmp_path / "out2", AnonymizeOptions(alpha_dir=tree))
    assert {r.outcome for r in report.records} == {Outcome.OK}
    copied = {r.image: np.asarray(Image.open(r.outputs["mask"]))[0, 0] for r in report.records}
    assert copied == {"a/x.png": 255, "b/x.png": 0}


def test_reports_accumulate_over_runs_and_unfinished_items_are_redone(tmp_path, astronaut):
    from p3m.jobs.anonymize import anonymize_files
    from p3m.privacy.anonymize import Outcome

    Image.fromarray(astronaut).save(tmp_path / "one.png")
    Image.fromarray(astronaut[:, ::-1]).save(tmp_path / "two.png")
    out = tmp_path / "out"
    first = anonymize_files([tmp_path / "one.png"], out)
    second = anonymize_files([tmp_path / "one.png", tmp_path / "two.png"], out)
    assert [r.outcome for r in second.records] == [Outcome.SKIPPED, Outcome.OK]
    totals = json.loads((out / "report.json").read_text())["total"]
    faces = first.totals()["faces"]
    assert faces >= 1 and totals["images"] == 2 and totals["faces"] == 2 * faces
    (out / "facemask" / "two.png").unlink()  # as if killed between its two outputs
    third = anonymize_files([tmp_path / "two.png"], out)
    assert [r.outcome for r in third.records] == [Outcome.OK] and (out / "facemask" / "two.png").is_file()
    assert json.loads((out / "report.json").read_text())["total"]["faces"] == 2 * faces


def test_stderr_survives_two_threads_loading_models_at_once():
    """Worker threads each load their own LiteRT interpreters, silencing fd 2 meanwhile;
    the process's stderr must point where it did before, whatever the interleaving."""
    import threading

    from p3m.utils.litert import native_stderr_silenced

    before = os.fstat(2)
    inside = threading.Event()

    def first():
        with native_stderr_silenced():
            inside.set()
            threading.Event().wait(0.3)

    def second():  # enters while the first is inside, and leaves after it
        inside.wait()
        with native_stderr_silenced():
            threading.Event().wait(0.5)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)


def test_only_the_formats_p3m_means_to_read_reach_a_decoder(tmp_path, monkeypatch):
    """EPS bytes (which Pillow would hand to Ghostscript) are refused however they are named
    or sent: one decoder allow-list in p3m.io.images, for files, bytes, mattes and trimaps."""
    from PIL import EpsImagePlugin

    from p3m.errors import ImageError
    from p3m.io.images import read_image_bytes, read_image_file, read_matte

    ran = []
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: ran.append(a))
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nnewpath 0 0 moveto 8 8 lineto stroke\nshowpage\n"
    (tmp_path / "photo.jpg").write_bytes(eps)
    for read in (lambda: read_image_file(tmp_path / "photo.jpg"), lambda: read_image_bytes(eps, name="upload"),
                 lambda: read_matte(tmp_path / "photo.jpg")):
        with pytest.raises(ImageError) as refused:
            read()
        assert "not an image file" in str(refused.value) or "cannot read matte" in str(refused.value)
    assert ran == []


def test_png_bytes_named_jpg_are_anonymized_and_saved_as_jpeg(tmp_path, astronaut):
    from p3m.jobs.anonymize import AnonymizeOptions, anonymize_files

    Image.fromarray(astronaut).save(tmp_path / "astro.jpg", format="PNG")  # a PNG under a .jpg name
    report = anonymize_files([tmp_path / "astro.jpg"], tmp_path / "out", AnonymizeOptions())
    assert report.records[0].status.value == "done", report.records[0].reason
    with Image.open(tmp_path / "out" / "blurred_image" / "astro.jpg") as written:
        assert written.format == "JPEG"


@pytest.mark.slow
def test_two_workers_give_the_records_of_one(tmp_path, astronaut):
    """dlib's models are per thread: --workers 2 crashed or lost faces when two threads shared one detector."""
    import cv2

    from p3m.jobs.anonymize import AnonymizeOptions, anonymize_files

    folder = tmp_path / "in"
    folder.mkdir()
    small = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    for index, image in enumerate((astronaut, astronaut[:, ::-1], small, np.concatenate([small, small[:, ::-1]], 1),
                                   data.coffee())):
        Image.fromarray(np.ascontiguousarray(image)).save(folder / f"p{index}.png")

    def rows(out, workers):
        report = anonymize_files([folder], tmp_path / out, AnonymizeOptions(workers=workers, detector="hog"))
        return [(r["image"], r["status"], r["faces"], r.get("min_identity_distance")) for r in report.rows()]

    one = rows("one", 1)
    assert [status for _, status, _, _ in one] == ["ok", "ok", "ok", "ok", "no-face"]
    for run in range(3):
        assert rows(f"two{run}", 2) == one


def test_a_second_run_into_the_same_folder_is_one_line_not_a_race(tmp_path, constant_engine, capsys):
    """Two runs into one -o deleted each other's temporary files and left reports with half
    the images; now the folder is locked while a job writes into it (another process too)."""
    import subprocess
    import sys

    from p3m.cli.main import main
    from p3m.errors import OutputError
    from p3m.io.outputs import exclusive
    from p3m.jobs.matte import MatteOptions, matte_files

    (tmp_path / "in").mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    with exclusive(out), pytest.raises(OutputError, match="another p3m run is writing into this folder"):
        matte_files(constant_engine, [tmp_path / "in"], out, MatteOptions())
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from p3m.io.outputs import exclusive\nwith exclusive(Path(sys.argv[1])):\n"
                               "    print('held', flush=True); time.sleep(30)", str(out)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["anonymize", str(tmp_path / "in"), "-o", str(out)]) == 1
        assert "another p3m run is writing into this folder" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    assert matte_files(constant_engine, [tmp_path / "in"], out, MatteOptions()).done == 1  # free again
