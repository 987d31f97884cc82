"""Inference: the published RESIZE/HYBRID strategies, engines, cut-outs, batch runs."""

from p3m.inference.engine import MattingEngine, NetworkEngine, predict_alpha
from p3m.inference.sizing import network_size

__all__ = ["MattingEngine", "NetworkEngine", "network_size", "predict_alpha"]
