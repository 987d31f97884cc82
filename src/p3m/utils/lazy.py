"""Package attributes imported on first use, so that importing a package costs
nothing until a name is needed (the command line starts without torch)."""

from __future__ import annotations

from importlib import import_module
from typing import Callable


def lazy_attributes(package: str, exports: dict[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` serving ``exports`` (name -> module) of ``package``."""
    namespace = import_module(package).__dict__

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(exports[name]), name)
        namespace[name] = value  # later look-ups skip this function
        return value

    return __getattr__
