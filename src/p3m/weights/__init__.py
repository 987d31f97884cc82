"""Weights in and out: safe loading of published checkpoints, safetensors export."""

from p3m.weights.io import convert_checkpoint, load_model, read_state_dict, save_model

__all__ = ["convert_checkpoint", "load_model", "read_state_dict", "save_model"]
