"""Optional packages: one clear error that says which extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from p3m.errors import EngineError


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module``, or raise EngineError naming the ``pip install "p3m[extra]"`` that brings it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module.partition(".")[0]:
            raise
        raise EngineError(f'{what} needs {module}, which this install lacks: pip install "p3m[{extra}]"') from None
