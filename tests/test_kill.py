"""SIGKILL in the middle of a batch, then the same command again: every output and
every report row complete, nothing half-written, no temporary file left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image
from skimage import data

import p3m

pytestmark = pytest.mark.slow


def _run_and_kill(argv, done, env=None, timeout=120):
    """Start ``p3m argv``; SIGKILL it once ``done()`` is true (some work written)."""
    process = subprocess.Popen([sys.executable, "-m", "p3m", *argv], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + timeout
    while not done() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "the batch finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def _temporaries(root):
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def test_matte_killed_mid_batch_resumes_to_complete_outputs(tmp_path, reference_model):
    weights = p3m.save_model(reference_model, tmp_path / "w.safetensors")
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(16):
        Image.fromarray(rng.integers(0, 256, (320, 240, 3), dtype=np.uint8)).save(photos / f"p{i:02d}.png")
    argv = ["matte", str(photos), "-o", str(out), "--checkpoint", str(weights), "--save", "alpha,cutout"]
    _run_and_kill(argv, lambda: len(list((out / "cutout").glob("*.png"))) >= 2 if (out / "cutout").is_dir() else False)
    finished_before = len(list((out / "cutout").glob("*.png")))
    assert 2 <= finished_before < 16
    done = subprocess.run([sys.executable, "-m", "p3m", *argv], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "16 done" not in done.stderr and "skipped" in done.stderr
    for kind in ("alpha", "cutout"):
        files = sorted((out / kind).glob("*.png"))
        assert len(files) == 16
        for path in files:
            with Image.open(path) as image:
                image.load()  # complete, decodable files
    assert not _temporaries(out)


def test_anonymize_killed_mid_batch_keeps_every_row(tmp_path):
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    for i in range(6):
        Image.fromarray(np.roll(data.astronaut(), 9 * i, axis=1)).save(photos / f"a{i}.png")
    journal = out / "report.jsonl"
    argv = ["anonymize", str(photos), "-o", str(out)]
    _run_and_kill(argv, lambda: journal.is_file() and len(journal.read_text().splitlines()) >= 2)
    rows_before = len(journal.read_text().splitlines())
    assert 2 <= rows_before < 6
    done = subprocess.run([sys.executable, "-m", "p3m", *argv], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["total"]["images"] == 6 and report["total"]["anonymized"] == 6
    assert {row["image"] for row in report["images"]} == {f"a{i}.png" for i in range(6)}
    assert all(row["status"] == "ok" and row["identity_matches"] == 0 for row in report["images"])
    assert report["total"]["faces"] == sum(row["faces"] for row in report["images"]) >= 6
    assert len(list((out / "blurred_image").glob("*.png"))) == 6 and not _temporaries(out)
