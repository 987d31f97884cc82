"""The deterministic weights of the reference fixtures.

Every state-dict entry gets a value computed from its own name and shape (see the
fixture README), so the published network can be pinned down numerically without a
weight file. Used by the tests and by ``p3m doctor``.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch
from torch import nn


def reference_value(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """The fixture value of one state-dict entry, from its name and shape alone."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
        return np.zeros(shape, dtype=np.int64)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    if leaf == "running_var":
        value = 0.5 + rng.random(shape)
    elif leaf == "running_mean":
        value = 0.1 * rng.standard_normal(shape)
    elif len(shape) == 4:
        value = rng.standard_normal(shape) * np.sqrt(1.0 / (shape[1] * shape[2] * shape[3]))
    elif len(shape) == 2:
        value = rng.standard_normal(shape) * np.sqrt(1.0 / shape[1])
    elif leaf == "weight":
        value = 1 + 0.1 * rng.standard_normal(shape)
    else:
        value = 0.1 * rng.standard_normal(shape)
    return value.astype(np.float32)


def reference_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Fixture weights for every entry of ``model.state_dict()``.

    An entry that shares its tensor with an earlier one (an alias) gets the earlier
    entry's value, as the recipe prescribes.
    """
    state: dict[str, torch.Tensor] = {}
    first_name_of: dict[int, str] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        key = id(tensor)
        if key in first_name_of:
            state[name] = state[first_name_of[key]]
            continue
        first_name_of[key] = name
        state[name] = torch.from_numpy(reference_value(name, tuple(tensor.shape)))
    return state
