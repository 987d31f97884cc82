"""Architecture names -> network constructors, and recognising a checkpoint's architecture.

``build_model`` is the one place that turns a name plus options into a network; it
records both on the model (``model.arch_config``) so the model can be saved and
rebuilt later without being told again.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from torch import nn

from p3m.errors import ArchitectureError
from p3m.models.p3mnet import P3MNet
from p3m.models.vitae import P3MNetViTAE

_MODULE_OPTIONS = ("tfi", "sbfi", "dbfi")

# name -> (constructor, default options)
_ARCHITECTURES: dict[str, tuple[Callable[..., nn.Module], dict[str, Any]]] = {
    "p3mnet-r34": (P3MNet, {"tfi": True, "sbfi": True, "dbfi": True}),
    "basic": (P3MNet, {"tfi": False, "sbfi": False, "dbfi": False}),
    "p3mnet-vitae-s": (P3MNetViTAE, {"tfi": True, "sbfi": True, "dbfi": True}),
}
# The seed article's model names (resnet34, vitae-s) and short forms.
_ALIASES = {"resnet34": "p3mnet-r34", "r34": "p3mnet-r34", "p3mnet": "p3mnet-r34",
            "vitae-s": "p3mnet-vitae-s", "vitae": "p3mnet-vitae-s"}


def available_architectures() -> list[str]:
    return sorted(_ARCHITECTURES)


def canonical_arch(arch: str) -> str:
    name = _ALIASES.get(arch.lower(), arch.lower())
    if name not in _ARCHITECTURES:
        raise ArchitectureError(
            f"unknown architecture {arch!r}; choose one of: {', '.join(available_architectures())}"
        )
    return name


def build_model(arch: str = "p3mnet-r34", **options: Any) -> nn.Module:
    """Build a network by name, e.g. ``build_model("p3mnet-r34", tfi=False)``.

    ``"basic"`` is the paper's BASIC baseline (P3M-Net with TFI, sBFI and dBFI off);
    the options switch each module on or off for the ablation.
    """
    name = canonical_arch(arch)
    constructor, defaults = _ARCHITECTURES[name]
    unknown = set(options) - set(defaults)
    if unknown:
        raise ArchitectureError(
            f"unknown option(s) {sorted(unknown)} for {name}; valid options: {sorted(defaults)}"
        )
    config = {**defaults, **options}
    model = constructor(**config)
    model.arch_config = {"arch": name, **config}
    return model


def infer_architecture(keys: Mapping[str, Any] | list[str]) -> dict[str, Any] | None:
    """Recognise the architecture of a state dict from its keys (None if unknown).

    Returns an ``arch_config`` (name plus options) that ``build_model`` accepts.
    """
    keys = set(keys)
    if "resnet.conv1.weight" in keys and "decoder_final_l.weight" in keys:
        present = {opt: any(k.startswith(f"{opt}_") for k in keys) for opt in _MODULE_OPTIONS}
        return {"arch": "p3mnet-r34" if any(present.values()) else "basic", **present}
    if "encoder.layers.0.RC.proj1.weight" in keys and "decoder.decoder_final_l.weight" in keys:
        present = {opt: any(k.startswith(f"decoder.{opt}_") for k in keys) for opt in _MODULE_OPTIONS}
        return {"arch": "p3mnet-vitae-s", **present}
    return None
