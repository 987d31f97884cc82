"""The built wheel, installed as a user installs it: into a fresh venv, without PyTorch,
then with the torch extra. Files the package needs but the wheel lacks (the page, the
fixtures) would show only here: every test before this one runs from the checkout."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TORCH_SPEC = os.environ.get("TORCH_SPEC", "torch==2.13.0")  # as the Makefile installs it (a CPU build)


def _run(*args, env=None, timeout=900) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, f"{' '.join(map(str, args))}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tracked() -> list[str]:
    return _run("git", "-C", ROOT, "ls-files").stdout.split()


def _clean_copy(target: Path) -> Path:
    """The tracked files as they are now, without the checkout's build/ (a module removed from
    src/ could still ship from a stale build/lib)."""
    import shutil

    for name in _tracked():
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    return target


def test_the_wheel_stands_alone(tmp_path, reference_model):
    import torch
    from skimage import data

    wheel_dir = tmp_path / "dist"
    source = _clean_copy(tmp_path / "source")
    _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", wheel_dir, source)
    (wheel,) = wheel_dir.glob("p3m-*.whl")
    shipped = {name for name in zipfile.ZipFile(wheel).namelist() if name.startswith("p3m/")}
    package = {name.removeprefix("src/") for name in _tracked() if name.startswith("src/p3m/")}
    assert shipped == package, f"lacks {sorted(package - shipped)}, extra {sorted(shipped - package)}"

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)
    python, p3m = venv / "bin" / "python", venv / "bin" / "p3m"
    _run(python, "-m", "pip", "install", "--quiet", f"{wheel}[serve]")
    assert _run(python, "-c", "import importlib.util as u; print(u.find_spec('torch') is None)").stdout.strip() == "True"

    env = {**os.environ, "P3M_HOME": str(tmp_path / "home")}
    env.pop("PYTHONPATH", None)
    fetched = _run(p3m, "weights", "fetch", env=env, timeout=1200).stdout
    assert "installed" in fetched and "pymatting's" in fetched  # the models, then the kernels compiled once
    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(data.astronaut()).save(photo)
    made = _run(p3m, "matte", photo, "-o", tmp_path / "cut.png", env=env)
    assert "preparing pymatting's kernels" not in made.stderr  # compiled at fetch, not again
    cut = np.asarray(Image.open(tmp_path / "cut.png"))
    assert cut.shape == (512, 512, 4) and cut[300:450, 150:350, 3].mean() > 250 and cut[:40, :40, 3].mean() < 20

    port = _free_port()
    server = subprocess.Popen([str(p3m), "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        import httpx

        deadline = time.monotonic() + 120
        while True:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, server.stdout.read()
                time.sleep(0.5)
        schema = httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=10)
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/matte", content=photo.read_bytes(), timeout=120)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert schema.status_code == 200 and "/v1/matte" in schema.json()["paths"]
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"

    # Then P3M-Net: torch as the Makefile installs it (a CPU build), the extra, weights from the fixture.
    _run(python, "-m", "pip", "install", "--quiet", TORCH_SPEC, timeout=1800)
    _run(python, "-m", "pip", "install", "--quiet", f"{wheel}[torch]", timeout=1800)
    checkpoint = tmp_path / "p3mnet.pth"
    torch.save({"state_dict": reference_model.state_dict()}, checkpoint)
    made = _run(p3m, "matte", photo, "-o", tmp_path / "net.png", "--engine", checkpoint, "--method", "resize",
                "--max-size", "256", env=env)
    assert "p3mnet" in made.stderr and (tmp_path / "net.png").is_file()
