"""Colour names for backgrounds, without numpy: the options model checks them when
``p3m --help``-light code parses a command line."""

from __future__ import annotations

#: The keying colours of video production, beside CSS's names (where "green" is 0,128,0).
KEYING_COLOURS = {"chroma-green": (0, 177, 64), "chroma-blue": (0, 71, 187)}


def parse_colour(spec: str) -> tuple[int, int, int] | None:
    """A CSS colour (``navy``, ``#0f0``, ``#00b140``, ``rgb(0, 255, 0)``, ``hsl(...)``, as
    Pillow's ImageColor reads them), ``r,g,b``, or a keying colour; None if not a colour."""
    from PIL import ImageColor

    text = spec.strip().lower()
    if text in KEYING_COLOURS:
        return KEYING_COLOURS[text]
    parts = text.split(",")
    if len(parts) == 3 and all(p.strip().isdigit() and 0 <= int(p) <= 255 for p in parts):
        return tuple(int(p) for p in parts)  # type: ignore[return-value]
    try:
        rgb = ImageColor.getrgb(text)[:3]
    except ValueError:
        return None
    return rgb if all(0 <= v <= 255 for v in rgb) else None  # Pillow lets rgb(300, 0, 0) through
