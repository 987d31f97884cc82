"""Synthetic P3M-10k, folder evaluation and the one-command benchmark."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

import p3m
from p3m.cli.main import main
from p3m.data.layout import DatasetError, find_split
from p3m.data.synthetic import make_portrait, write_synthetic_dataset
from p3m.evaluation.metrics import evaluate


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("synth") / "P3M-10k", train=2, val=3,
                                   size=(128, 96), seed=5)


def test_synthetic_dataset_has_the_p3m10k_layout(synth_root):
    expected = {
        "train/blurred_image": 2, "train/mask": 2, "train/fg": 2, "train/bg": 2,
        "validation/P3M-500-P/blurred_image": 3, "validation/P3M-500-P/mask": 3,
        "validation/P3M-500-P/trimap": 3, "validation/P3M-500-P/facemask": 3,
        "validation/P3M-500-NP/original_image": 3, "validation/P3M-500-NP/mask": 3,
        "validation/P3M-500-NP/trimap": 3,
    }
    for folder, count in expected.items():
        assert len(list((synth_root / folder).iterdir())) == count, folder
    trimap = np.asarray(Image.open(next((synth_root / "validation/P3M-500-P/trimap").iterdir())))
    assert set(np.unique(trimap)) == {0, 128, 255}


def test_synthetic_portraits_are_deterministic_and_not_trivial():
    a = make_portrait(np.random.default_rng(1), 160, 120)
    b = make_portrait(np.random.default_rng(1), 160, 120)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.alpha, b.alpha)
    transition = (a.alpha > 0) & (a.alpha < 1)
    assert transition.mean() > 0.01  # hair strands and soft edges
    assert 0.1 < (a.alpha == 1).mean() < 0.8
    composite = a.alpha[..., None] * a.foreground + (1 - a.alpha[..., None]) * a.background
    assert np.abs(composite - a.image).max() <= 0.5 + 1e-6  # I = alpha F + (1 - alpha) B
    changed = (a.image != a.blurred).any(axis=2)
    assert changed.any() and not (changed & (a.facemask == 0)).any()  # blur only in the face region
    assert not (changed & transition).any()  # never on transition pixels
    assert a.background.std() > 10  # textured


def test_split_is_found_under_validation_or_root(synth_root, tmp_path):
    assert find_split(synth_root, "P3M-500-P").root == synth_root / "validation" / "P3M-500-P"
    flat = tmp_path / "flat"
    (flat / "P3M-500-NP" / "original_image").mkdir(parents=True)
    (flat / "P3M-500-NP" / "mask").mkdir()
    assert find_split(flat, "P3M-500-NP").root == flat / "P3M-500-NP"
    with pytest.raises(DatasetError, match="no P3M-500-P split"):
        find_split(flat, "P3M-500-P")


def _write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_evaluate_folders_matches_by_stem_and_reports_problems(tmp_path, capsys):
    rng = np.random.default_rng(0)
    gts = {f"img{i}": rng.integers(0, 256, (20, 30), dtype=np.uint8) for i in range(3)}
    trimaps = {k: np.where(v > 200, 255, np.where(v < 50, 0, 128)).astype(np.uint8) for k, v in gts.items()}
    for k, v in gts.items():
        _write(tmp_path / "gt" / f"{k}.png", v)
        _write(tmp_path / "tri" / f"{k}.png", trimaps[k])
    _write(tmp_path / "pred" / "img0.png", gts["img0"])  # perfect
    _write(tmp_path / "pred" / "img1.png", np.zeros((20, 30), np.uint8))
    _write(tmp_path / "pred" / "extra.png", np.zeros((20, 30), np.uint8))
    _write(tmp_path / "pred" / "img2.png", np.zeros((21, 30), np.uint8))  # wrong size
    out_json, out_csv = tmp_path / "m.json", tmp_path / "m.csv"
    code = main(["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--trimap",
                 str(tmp_path / "tri"), "--json", str(out_json), "--csv", str(out_csv), "--workers", "2"])
    captured = capsys.readouterr()
    assert code == 1
    assert "extra.png: extra prediction" in captured.err
    assert "img2: size mismatch: prediction 30x21, ground truth 30x20" in captured.err
    data = json.loads(out_json.read_text())
    assert data["count"] == 2 and set(data["per_image"]) == {"img0", "img1"}
    assert data["per_image"]["img0"]["SAD"] == 0.0
    expected = evaluate(np.zeros((20, 30), np.uint8), gts["img1"], trimaps["img1"])
    assert data["per_image"]["img1"] == pytest.approx(expected)
    assert data["mean"]["SAD"] == pytest.approx(expected["SAD"] / 2)
    rows = list(csv.reader(out_csv.open()))
    assert rows[0][:4] == ["image", "SAD", "MSE", "MAD"] and len(rows) == 3
    assert "mean of 2" in captured.out


def test_evaluate_fast_skips_grad_and_conn(tmp_path, capsys):
    g = np.random.default_rng(1).integers(0, 256, (16, 16), dtype=np.uint8)
    _write(tmp_path / "gt" / "a.png", g)
    _write(tmp_path / "pred" / "a.png", g)
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--fast",
                 "--json", str(tmp_path / "m.json")]) == 0
    assert set(json.loads((tmp_path / "m.json").read_text())["mean"]) == {"SAD", "MSE", "MAD"}


def test_evaluate_takes_the_folder_p3m_matte_wrote(tmp_path, capsys):
    g = np.random.default_rng(2).integers(0, 256, (16, 16), dtype=np.uint8)
    _write(tmp_path / "gt" / "a.png", g)
    _write(tmp_path / "out" / "alpha" / "a.png", g)  # what p3m matte -o out writes
    assert main(["evaluate", "--pred", str(tmp_path / "out"), "--gt", str(tmp_path / "gt"), "--fast"]) == 0
    assert "mean of 1" in capsys.readouterr().out
    _write(tmp_path / "nested" / "run1" / "a.png", g)
    assert main(["evaluate", "--pred", str(tmp_path / "nested"), "--gt", str(tmp_path / "gt")]) == 1
    assert f"the mattes are in run1: pass --pred {tmp_path / 'nested' / 'run1'}" in capsys.readouterr().err


@pytest.mark.slow
def test_benchmark_writes_report_metrics_csv_and_gallery(synth_root, tmp_path, reference_model, capsys):
    weights = p3m.save_model(reference_model, tmp_path / "ref.safetensors")
    out = tmp_path / "bench"
    code = main(["benchmark", "--data", str(synth_root), "--checkpoint", f"ours={weights}",
                 "--checkpoint", f"other={weights}", "--trained-on", "ours=B", "--trained-on", "other=N",
                 "--out", str(out), "--limit", "2", "--fast"])
    assert code == 0
    report = (out / "report.md").read_text()
    assert "| ours | blurred | B:B / B:N |" in report and "| other | normal | N:B / N:N |" in report
    # synthetic data: named so, and never beside the published P3M-500 numbers
    assert report.startswith("# Benchmark on a synthetic dataset") and "P3M-Net (published)" not in report
    assert "GRAD by 10" in report and "8.73" not in report
    assert "ours: P3M-500-P: B:B; P3M-500-NP: B:N" in report
    assert "other: P3M-500-P: N:B; P3M-500-NP: N:N" in report
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["models"]["ours"]["P3M-500-P"]["count"] == 2
    assert metrics["models"]["ours"]["P3M-500-NP"]["protocol"] == "B:N"
    assert len((out / "per_image.csv").read_text().strip().splitlines()) == 1 + 2 * 2 * 2
    assert (out / "gallery_ours.png").is_file()
    alpha = np.asarray(Image.open(out / "ours" / "P3M-500-P" / "alpha" / "p_00000.png"))
    assert alpha.shape == (128, 96)
    # the saved alphas score the same through p3m evaluate (up to 8-bit rounding)
    split = synth_root / "validation" / "P3M-500-P"
    per_image = metrics["per_image"]["ours"]["P3M-500-P"]["p_00000"]
    gt = np.asarray(Image.open(split / "mask" / "p_00000.png"))
    assert evaluate(alpha, gt)["SAD"] == pytest.approx(per_image["SAD"], abs=0.01)


def test_published_row_stands_only_beside_results_on_p3m10k(synth_root, tmp_path, reference_model):
    import shutil

    from p3m.data.layout import SYNTHETIC_MARKER
    from p3m.jobs.benchmark import BenchmarkModel, run_benchmark

    real = tmp_path / "P3M-10k"  # the same files without the marker stand for a real copy
    shutil.copytree(synth_root / "validation", real / "validation")
    assert (synth_root / SYNTHETIC_MARKER).is_file() and not (real / SYNTHETIC_MARKER).exists()
    model = BenchmarkModel("ours", p3m.open_engine(reference_model, method="resize"), "B")
    result = run_benchmark([model], real, ["P3M-500-P"], tmp_path / "bench", limit=1, fast=True)
    report = result.markdown()
    assert not result.synthetic and report.startswith("# P3M-10k benchmark")
    assert "| P3M-Net (published) | blurred | 8.73 | 0.0026 | 0.0051 | 6.89 | 8.22 | 13.88 |" in report
    assert [row[0] for row in result.table().rows] == ["ours", "P3M-Net (published)"]


def test_report_labels_columns_by_protocol_when_models_share_it(synth_root, tmp_path, reference_model, capsys):
    weights = p3m.save_model(reference_model, tmp_path / "ref.safetensors")
    out = tmp_path / "bench"
    assert main(["benchmark", "--data", str(synth_root), "--checkpoint", str(weights), "--trained-on", "B",
                 "--out", str(out), "--limit", "1", "--fast", "--split", "P3M-500-NP"]) == 0
    assert "| Model | Trained on | P3M-500-NP (B:N) SAD |" in (out / "report.md").read_text()


def test_benchmark_bad_data_root_is_one_line(tmp_path, capsys):
    assert main(["benchmark", "--data", str(tmp_path / "nope"), "--checkpoint", "x.pth"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such" in err[0]
