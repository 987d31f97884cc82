"""dlib's face detector, 68-point shape predictor and face-recognition network.

The model files ship in the ``face-recognition-models`` package on PyPI. Its own
``__init__`` imports ``pkg_resources`` (gone from new setuptools), so the files are
located with ``importlib.util.find_spec`` instead of importing it. Nothing is downloaded.

dlib's objects are not safe to share between threads (two threads in one HOG detector
crashed the process or lost faces), so each thread loads its own, once.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from pathlib import Path

from p3m.errors import PrivacySetupError, choice_error


def per_thread(load):
    """``load(*args)`` once per thread and arguments, cached in that thread."""
    local = threading.local()

    @functools.wraps(load)
    def cached(*args):
        store = local.__dict__.setdefault("models", {})
        if args not in store:
            store[args] = load(*args)
        return store[args]
    return cached


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


@per_thread
def detector(kind: str = "hog"):
    dlib = _dlib()
    if kind == "hog":
        return dlib.get_frontal_face_detector()
    if kind == "cnn":
        return dlib.cnn_face_detection_model_v1(str(model_path("mmod_human_face_detector.dat")))
    raise choice_error("face detector", kind, ("hog", "cnn"))


@per_thread
def shape_predictor():
    return _dlib().shape_predictor(str(model_path("shape_predictor_68_face_landmarks.dat")))


@per_thread
def face_recognizer():
    return _dlib().face_recognition_model_v1(str(model_path("dlib_face_recognition_resnet_model_v1.dat")))


def check_installed() -> None:
    """Fail early, before any work, if dlib or its model files are missing (loads nothing)."""
    _dlib()
    for name in ("shape_predictor_68_face_landmarks.dat", "dlib_face_recognition_resnet_model_v1.dat"):
        model_path(name)
