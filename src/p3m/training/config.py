"""Training configuration: defaults = the published recipe; a TOML file and command-line
overrides on top; the resolved configuration is saved with every run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from p3m.errors import OptionError

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib


@dataclass(frozen=True)
class LossWeights:
    """The published weights of the total loss: semantic / 6 + 2 local + 3 fusion + composition."""

    semantic: float = 1 / 6
    local: float = 2.0
    fusion: float = 3.0
    composition: float = 1.0


@dataclass
class TrainConfig:
    data: str = ""                      # P3M-10k root (train/, validation/)
    images: str = "blurred"             # blurred (PPT, "B") | original ("N") | a folder of images
    masks: str = ""                     # folder of mattes (default ROOT/train/mask)
    out: str = "runs/p3m"
    arch: str = "p3mnet-r34"
    tfi: bool = True
    sbfi: bool = True
    dbfi: bool = True
    backbone_weights: str = ""          # ImageNet encoder weights (resnet.* / encoder.* keys)
    epochs: int = 150
    batch_size: int = 8
    lr: float = 1e-5
    size: int = 512                     # training input size after the crop
    crop_sizes: list = field(default_factory=lambda: [512, 768, 1024])
    accumulate: int = 1                 # gradient accumulation steps
    precision: str = "fp32"             # fp32 | bf16 | fp16 (mixed precision on CUDA)
    device: str = "auto"
    workers: int = 2                    # data-loader processes
    seed: int = 0
    composition_loss: bool = True
    copy_paste_faces: str = ""          # P3M-CP (image level): a folder of normal portraits; "" = off
    copy_paste_probability: float = 0.5
    recipe: str = "published"           # published | p3m (docs/training.md); single rules below override it
    laplacian_kernel: str = ""          # "" = the recipe's; published | gaussian
    alpha_loss: str = ""                # published | masked-mean
    composition: str = ""               # published | mean
    trimap_resize: str = ""             # linear | nearest
    crop_size: str = ""                 # published | fitting
    crop_anchor: str = ""               # published | unknown-clamped
    weight_semantic: float = LossWeights.semantic
    weight_local: float = LossWeights.local
    weight_fusion: float = LossWeights.fusion
    weight_composition: float = LossWeights.composition
    val_every: int = 1                  # epochs between validations (0: never)
    val_limit: int = 0                  # images per test split (0: all)
    val_method: str = "resize"
    checkpoint_every: int = 0           # optimiser steps between extra checkpoints (0: per epoch only)
    max_bad_samples: int = 20           # stop once more samples than this were unusable
    limit: int = 0                      # use only the first N training samples (0: all)
    max_steps: int = 0                  # stop after N optimiser steps (0: run all epochs)
    max_minutes: float = 0.0            # stop after this much training time (0: no limit)
    log_every: int = 10                 # steps between plain progress lines

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]


def _coerce(name: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise OptionError(f"config {name}: expected true/false, got {value!r}")
        return bool(value)
    if isinstance(default, list):
        return [int(v) for v in (value.split(",") if isinstance(value, str) else value)]
    try:
        return type(default)(value)
    except (TypeError, ValueError):
        raise OptionError(f"config {name}: expected {type(default).__name__}, got {value!r}") from None


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Defaults <- TOML file <- overrides (None values are ignored)."""
    values: dict[str, Any] = {}
    if path:
        path = Path(path)
        try:
            values.update(tomllib.loads(path.read_text()))
        except FileNotFoundError:
            raise OptionError(f"{path}: no such config file") from None
        except tomllib.TOMLDecodeError as exc:
            raise OptionError(f"{path}: not valid TOML ({exc})") from None
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    defaults = TrainConfig()
    unknown = sorted(set(values) - set(TrainConfig.field_names()))
    if unknown:
        raise OptionError(f"unknown config key(s) {unknown}; valid keys: {', '.join(TrainConfig.field_names())}")
    return TrainConfig(**{k: _coerce(k, v, getattr(defaults, k)) for k, v in values.items()} |
                       {k: getattr(defaults, k) for k in TrainConfig.field_names() if k not in values})


def to_toml(config: TrainConfig) -> str:
    """The resolved configuration as TOML (flat keys, as load_config reads them)."""
    import tomli_w

    return tomli_w.dumps(dataclasses.asdict(config))
