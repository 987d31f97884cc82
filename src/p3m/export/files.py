"""How the files of one ONNX export are named, and what each graph outputs (no torch)."""

from __future__ import annotations

import os
from pathlib import Path

GRAPHS = ("full", "global", "local")
OUTPUTS = {"full": ["global_logits", "local_alpha", "fusion_alpha"], "global": ["global_logits"],
           "local": ["local_alpha"]}


def graph_path(path: str | os.PathLike, graph: str) -> Path:
    """Where ``graph`` of the export named ``path`` (the whole network's file) lives:
    ``NAME.onnx``, ``NAME.global.onnx``, ``NAME.local.onnx``."""
    path = Path(path)
    if graph == "full":
        return path
    return path.with_name(f"{path.name.removesuffix('.onnx')}.{graph}.onnx")
