"""``p3m demo``: the whole system runs, and its page shows every picture and the table
in a real browser (headless Chromium, installed by ``make test`` when missing)."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from p3m.cli.main import main

pytestmark = pytest.mark.slow

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--allow-file-access-from-files", "--virtual-time-budget=5000"]


@pytest.fixture(scope="module")
def demo_page(fetched_home, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("P3M_HOME", str(fetched_home))
        assert main(["demo", str(out), "--quick"]) == 0
    return out


def test_demo_writes_every_part(demo_page):
    for part in ("matte/alpha/astronaut.png", "matte/cutout/astronaut.png", "matte/composite/astronaut.png",
                 "anonymized/blurred_image/astronaut.jpg", "anonymized/report.json", "training/final.safetensors",
                 "benchmark/report.md", "training_curve.svg", "report.md", "index.html"):
        assert (demo_page / part).is_file(), part
    report = (demo_page / "report.md").read_text()
    assert "| trained | blurred | B:B / B:N |" in report and "| default-engine |" in report
    assert "identity matches 0" in report


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(not _chromium(), reason="chromium is not installed (make test installs it)")
def test_demo_page_loads_every_image_and_the_table_in_chromium(demo_page, tmp_path):
    url = (demo_page / "index.html").as_uri()
    browser = _chromium()
    dom = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'a'}", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120).stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    total = int(re.search(r'data-images-total="(\d+)"', body).group(1))
    loaded = int(re.search(r'data-images-loaded="(\d+)"', body).group(1))
    assert total == 8 and loaded == total, body
    # header, untrained, trained, default engine; synthetic data never shows the published row
    assert "<table id=\"metrics\">" in dom and dom.count("<tr>") >= 4 and "P3M-Net (published)" not in dom
    shot = tmp_path / "page.png"
    subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'b'}", "--window-size=1280,1600",
                    f"--screenshot={shot}", url], capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(float)
    assert pixels.shape[:2] == (1600, 1280) and pixels.std() > 20  # a page with pictures, not a blank one
