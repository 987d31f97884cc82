"""Weights in and out: safe loading of published checkpoints, safetensors export.

Imported lazily: the default engine's model store (``p3m.weights.default_model``) is
used without PyTorch; loading network weights needs it.
"""

from p3m.utils.lazy import lazy_attributes

_EXPORTS = {name: "p3m.weights.io" for name in ("convert_checkpoint", "load_model", "read_state_dict", "save_model")}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_attributes(__name__, _EXPORTS)
