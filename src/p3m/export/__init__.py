"""Exporting P3M networks to run elsewhere: ONNX files for ONNX Runtime."""

from p3m.utils.lazy import lazy_attributes

_EXPORTS = {
    "export_onnx": "p3m.export.onnx",
    "graph_path": "p3m.export.files",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_attributes(__name__, _EXPORTS)
