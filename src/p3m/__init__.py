"""p3m: privacy-preserving portrait matting (P3M-Net) in plain PyTorch.

Top-level names are imported on first use, so that tools which need no network
(metrics, evaluation workers) do not pay for importing torch.
"""

from p3m.utils.lazy import lazy_attributes

_EXPORTS = {
    "ArchitectureError": "p3m.errors",
    "CheckpointError": "p3m.errors",
    "EngineError": "p3m.errors",
    "P3MError": "p3m.errors",
    "P3MNet": "p3m.models",
    "P3MOutput": "p3m.models",
    "available_architectures": "p3m.architectures",
    "build_model": "p3m.architectures",
    "register_architecture": "p3m.architectures",
    "MattingEngine": "p3m.inference.engine",
    "open_engine": "p3m.inference.factory",
    "predict_alpha": "p3m.inference.factory",
    "matte": "p3m.api",
    "remove": "p3m.api",
    "live": "p3m.video.live",
    "convert_checkpoint": "p3m.weights",
    "load_model": "p3m.weights",
    "save_model": "p3m.weights",
}

__all__ = ["__version__", *_EXPORTS]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("p3m")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0+unknown"


_exported = lazy_attributes(__name__, _EXPORTS)


def __getattr__(name: str):
    if name == "__version__":
        globals()[name] = value = _version()
        return value
    return _exported(name)


def __dir__():
    return sorted(__all__)
