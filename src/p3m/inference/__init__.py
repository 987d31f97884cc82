"""Inference: the engine factory, the published RESIZE/HYBRID strategies, cut-outs.

Names are imported on first use: opening the default engine imports no torch.
"""

from importlib import import_module

_EXPORTS = {
    "MattingEngine": "p3m.inference.engine",
    "NetworkEngine": "p3m.inference.network_engine",
    "open_engine": "p3m.inference.factory",
    "predict_alpha": "p3m.inference.factory",
    "network_size": "p3m.inference.sizing",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'p3m.inference' has no attribute {name!r}")
