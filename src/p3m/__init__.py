"""p3m: privacy-preserving portrait matting (P3M-Net) in plain PyTorch."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("p3m")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from p3m.errors import ArchitectureError, CheckpointError, P3MError
from p3m.models import P3MNet, P3MOutput, available_architectures, build_model
from p3m.inference import predict_alpha
from p3m.weights import convert_checkpoint, load_model, save_model

__all__ = [
    "ArchitectureError",
    "CheckpointError",
    "P3MError",
    "P3MNet",
    "P3MOutput",
    "__version__",
    "available_architectures",
    "build_model",
    "convert_checkpoint",
    "load_model",
    "predict_alpha",
    "save_model",
]
