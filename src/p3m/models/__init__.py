"""Networks: P3M-Net and its ablation variants, built by name.

Names are imported on first use, so that reading architecture specs or class
constants does not import torch.
"""

from importlib import import_module

_EXPORTS = {
    "P3MNet": "p3m.models.p3mnet",
    "P3MOutput": "p3m.models.outputs",
    "fuse_global_local": "p3m.models.outputs",
    "available_architectures": "p3m.architectures",
    "build_model": "p3m.architectures",
    "infer_architecture": "p3m.architectures",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'p3m.models' has no attribute {name!r}")
