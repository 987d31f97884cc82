"""The network input size for an image: a ratio of its size, at most ``max_size``,
rounded down to a multiple of 32 (the encoder pools five times).

Two policies:
- ``"aspect"`` (default) scales both sides by one factor so the longer side fits
  ``max_size``; the picture keeps its proportions.
- ``"published"`` clips height and width to ``max_size`` separately, as the authors'
  test code does; it squashes any image whose side exceeds ``max_size`` (e.g. HYBRID's
  full-size pass on a 1920 x 1080 photo). Use it to compare with published numbers.
"""

from __future__ import annotations

from p3m.errors import choice_error
from p3m.options import SIZINGS

MULTIPLE = 32


def network_size(height: int, width: int, ratio: float, *, max_size: int = 1600, sizing: str = "aspect") -> tuple[int, int]:
    """(height, width) at which to run the network for an image of ``height`` x ``width``."""
    if sizing not in SIZINGS:
        raise choice_error("sizing", sizing, SIZINGS)
    h, w = int(height * ratio), int(width * ratio)
    if sizing == "published":
        h, w = min(max_size, h), min(max_size, w)
    else:
        scale = min(1.0, max_size / max(h, w, 1))
        h, w = int(h * scale), int(w * scale)
    # Tiny images would round to zero (the published code crashes there): use 32.
    return max(MULTIPLE, h - h % MULTIPLE), max(MULTIPLE, w - w % MULTIPLE)
