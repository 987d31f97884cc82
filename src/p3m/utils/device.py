"""Choosing the torch device from a user's word ("auto", "cpu", "cuda", ...)."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from p3m.errors import OptionError
from p3m.utils.temporarily import temporarily


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"`` -> CUDA when available, else CPU; otherwise as given."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise OptionError(f"unknown device {device!r} ({exc})") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise OptionError(f"device {device!r} requested but CUDA is not available on this machine")
    return resolved


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run torch's CPU ops on ``count`` threads inside the block.

    With several threads, PyTorch splits a channels-last max-unpooling between threads,
    and where two pools picked the same pixel, which value stays depends on where the
    split falls (one row per split, found in this project); other reductions may also
    combine partial sums differently. One thread makes a computation reproducible
    whatever its shape, which checks of exact identity need.
    """
    with temporarily(torch.get_num_threads, torch.set_num_threads, count):
        yield
