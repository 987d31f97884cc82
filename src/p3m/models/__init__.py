"""Networks: P3M-Net and its ablation variants, built by name.

Names are imported on first use, so that reading architecture specs or class
constants does not import torch.
"""

from p3m.utils.lazy import lazy_attributes

_EXPORTS = {
    "P3MNet": "p3m.models.p3mnet",
    "P3MOutput": "p3m.models.outputs",
    "fuse_global_local": "p3m.models.outputs",
    "available_architectures": "p3m.architectures",
    "build_model": "p3m.architectures",
    "infer_architecture": "p3m.architectures",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_attributes(__name__, _EXPORTS)
