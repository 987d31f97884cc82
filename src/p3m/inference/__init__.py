"""Inference: the engine factory, the published RESIZE/HYBRID strategies, cut-outs.

Names are imported on first use: opening the default engine imports no torch.
"""

from p3m.utils.lazy import lazy_attributes

_EXPORTS = {
    "MattingEngine": "p3m.inference.engine",
    "NetworkEngine": "p3m.inference.network_engine",
    "open_engine": "p3m.inference.factory",
    "predict_alpha": "p3m.inference.factory",
    "network_size": "p3m.inference.sizing",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_attributes(__name__, _EXPORTS)
