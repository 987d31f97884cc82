"""What p3m knows about each network architecture, one spec per architecture.

An :class:`ArchitectureSpec` holds everything the rest of the package asks about a
network: how to build it, how to recognise its checkpoints, its reference fixture,
its input normalisation, what training never updates, where its ImageNet encoder
lives and how much it is preferred among installed weights. The command line, the
doctor, the weights store, inference and training read the spec and never name an
architecture themselves.

Adding a backbone: write the network (``p3m/models/``), a spec module beside this
one that calls :func:`register_architecture`, and add that module to
``BUILTIN_MODULES``. Nothing here imports torch: the command line can list the
architectures without paying for it.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, Callable, Iterable, Mapping

from p3m.errors import ArchitectureError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: The modules that register the built-in architectures (one line per architecture).
BUILTIN_MODULES = (
    "p3m.architectures.resnet34",
    "p3m.architectures.vitae_s",
)


@dataclass(frozen=True)
class ArchitectureSpec:
    name: str                                   # canonical name, e.g. "p3mnet-r34"
    title: str                                  # for people, e.g. "P3M-Net (ResNet-34)"
    builder: str | Callable[..., Any]           # "module:Class" (imported on first build) or a callable
    options: Mapping[str, Any] = field(default_factory=dict)  # default constructor options
    aliases: tuple[str, ...] = ()               # other names users type (the seed article's)
    #: keys of a state dict -> an arch_config (name + options), or None if not this family
    recognise: Callable[[set[str]], dict[str, Any] | None] | None = None
    fixture: str | None = None                  # stem of p3m/reference/data/<stem>_*.{npz,json}
    mean: tuple[float, float, float] = IMAGENET_MEAN  # input normalisation of RGB in [0, 1]
    std: tuple[float, float, float] = IMAGENET_STD
    frozen: tuple[str, ...] = ()                # fnmatch patterns of parameters training never updates
    backbone: str | None = None                 # attribute holding the ImageNet encoder
    backbone_files: str = ""                    # for people: which ImageNet weight files fit the encoder
    preference: int = 100                       # lower is preferred among installed weights

    def build(self, **options: Any):
        """The network in train mode, with ``arch_config`` recorded for saving."""
        unknown = set(options) - set(self.options)
        if unknown:
            raise ArchitectureError(f"unknown option(s) {sorted(unknown)} for {self.name}; "
                                    f"valid options: {sorted(self.options)}")
        config = {**self.options, **options}
        constructor = self.builder
        if isinstance(constructor, str):
            module, _, attribute = constructor.partition(":")
            constructor = getattr(import_module(module), attribute)
        model = constructor(**config)
        model.arch_config = {"arch": self.name, **config}
        return model

    def is_frozen(self, parameter: str) -> bool:
        return any(fnmatch.fnmatchcase(parameter, pattern) for pattern in self.frozen)

    def normalise(self, x):
        """The network's input from an N x 3 x H x W float tensor in [0, 1]."""
        return normalise(x, self.mean, self.std)


def normalise(x, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """(x - mean) / std per channel of an N x 3 x H x W tensor: the one normalisation
    inference and training share (ImageNet statistics unless a spec says otherwise)."""
    return (x - x.new_tensor(mean).view(1, 3, 1, 1)) / x.new_tensor(std).view(1, 3, 1, 1)


def input_normalisation(model) -> Callable:
    """The normalisation a model expects: its spec's, ImageNet's for foreign networks."""
    spec = spec_of(model)
    return spec.normalise if spec is not None else normalise


_SPECS: dict[str, ArchitectureSpec] = {}
_ALIASES: dict[str, str] = {}
_loaded = False


def register_architecture(spec: ArchitectureSpec) -> ArchitectureSpec:
    """Make ``spec`` known everywhere (CLI choices, loading, doctor, weights store, training)."""
    taken = {spec.name, *spec.aliases} & (set(_SPECS) | set(_ALIASES))
    if taken:
        raise ArchitectureError(f"architecture name(s) {sorted(taken)} already registered")
    _SPECS[spec.name] = spec
    _ALIASES.update({alias: spec.name for alias in spec.aliases})
    return spec


def unregister_architecture(name: str) -> None:
    """Forget an architecture registered at run time (tests, plugins)."""
    spec = _SPECS.pop(name)
    for alias in spec.aliases:
        _ALIASES.pop(alias, None)


def _specs() -> dict[str, ArchitectureSpec]:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in BUILTIN_MODULES:
            import_module(module)
    return _SPECS


def all_specs() -> list[ArchitectureSpec]:
    """Every registered architecture, preferred first."""
    return sorted(_specs().values(), key=lambda s: (s.preference, s.name))


def available_architectures() -> list[str]:
    return sorted(_specs())


def architecture_names() -> list[str]:
    """Every name a user may type: canonical names and aliases."""
    return sorted({*_specs(), *_ALIASES})


def get_spec(name: str) -> ArchitectureSpec:
    """The spec of a canonical name or alias (any case)."""
    specs = _specs()
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in specs:
        raise ArchitectureError(f"unknown architecture {name!r}; choose one of: {', '.join(available_architectures())}")
    return specs[key]


def canonical_arch(name: str) -> str:
    return get_spec(name).name


def spec_of(model) -> ArchitectureSpec | None:
    """The spec a model was built from (None for networks p3m did not build)."""
    config = getattr(model, "arch_config", None)
    return get_spec(config["arch"]) if config else None


def build_model(arch: str = "p3mnet-r34", **options: Any):
    """Build a network by name, e.g. ``build_model("p3mnet-r34", tfi=False)``.

    ``"basic"`` is the paper's BASIC baseline (P3M-Net with TFI, sBFI and dBFI off);
    the options switch each module on or off for the ablation.
    """
    return get_spec(arch).build(**options)


def infer_architecture(keys: Mapping[str, Any] | Iterable[str]) -> dict[str, Any] | None:
    """Recognise the architecture of a state dict from its keys (None if unknown).

    Returns an ``arch_config`` (name plus options) that ``build_model`` accepts.
    """
    names = set(keys)
    for spec in all_specs():
        if spec.recognise is not None:
            config = spec.recognise(names)
            if config is not None:
                return config
    return None


def interaction_switches(keys: set[str], prefix: str = "") -> dict[str, bool]:
    """Which of TFI, sBFI and dBFI a P3M decoder's state-dict keys hold."""
    return {option: any(k.startswith(f"{prefix}{option}_") for k in keys) for option in ("tfi", "sbfi", "dbfi")}
