"""dlib's face detector, 68-point shape predictor and face-recognition network.

The model files ship in the ``face-recognition-models`` package on PyPI. Its own
``__init__`` imports ``pkg_resources`` (gone from new setuptools), so the files are
located with ``importlib.util.find_spec`` instead of importing it. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from p3m.errors import PrivacySetupError, choice_error

INSTALL_HINT = "install the face tools with: pip install 'p3m[privacy]' (dlib-bin and face-recognition-models)"


def _dlib():
    try:
        import dlib
    except ImportError:
        raise PrivacySetupError(f"dlib is not installed; {INSTALL_HINT}") from None
    return dlib


def model_path(name: str) -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise PrivacySetupError(f"face-recognition-models is not installed; {INSTALL_HINT}")
    path = Path(spec.origin).parent / "models" / name
    if not path.is_file():
        raise PrivacySetupError(f"{path}: model file missing from face-recognition-models; reinstall it")
    return path


@lru_cache(maxsize=None)
def detector(kind: str = "hog"):
    dlib = _dlib()
    if kind == "hog":
        return dlib.get_frontal_face_detector()
    if kind == "cnn":
        return dlib.cnn_face_detection_model_v1(str(model_path("mmod_human_face_detector.dat")))
    raise choice_error("face detector", kind, ("hog", "cnn"))


@lru_cache(maxsize=None)
def shape_predictor():
    return _dlib().shape_predictor(str(model_path("shape_predictor_68_face_landmarks.dat")))


@lru_cache(maxsize=None)
def face_recognizer():
    return _dlib().face_recognition_model_v1(str(model_path("dlib_face_recognition_resnet_model_v1.dat")))
