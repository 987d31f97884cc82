"""Networks: P3M-Net and its ablation variants, built by name."""

from p3m.models.outputs import P3MOutput, fuse_global_local
from p3m.models.p3mnet import P3MNet
from p3m.models.registry import available_architectures, build_model, infer_architecture

__all__ = [
    "P3MNet",
    "P3MOutput",
    "available_architectures",
    "build_model",
    "fuse_global_local",
    "infer_architecture",
]
