"""Every option p3m takes, defined once: name, type, allowed values, default, help and
validation.

An option set is a frozen dataclass whose fields carry an :class:`Option` in their
metadata. The Python API builds the sets directly (``MatteOptions(save=("cutout",))``);
the command line's flags (:mod:`p3m.cli.options`), the service's parameters and their
OpenAPI schema (:mod:`p3m.serve.app`) and a cluster's engine options are all derived
from the fields here, and every value passes through :meth:`Option.parse`, so a bad
value gets the same one-line :class:`~p3m.errors.OptionError` wherever it was given.

The sets:
- :class:`EngineOptions`: what runs and how (``open_engine``'s arguments);
- :class:`MatteOptions`: what ``p3m matte`` makes of each image;
- :class:`FaceBlurOptions`: how faces are blurred and checked (``p3m anonymize`` and
  private cut-outs);
- :class:`RunOptions`: how a job over many files runs; :class:`AnonymizeOptions` is
  the face options plus the run options plus the folders ``p3m anonymize`` reads;
- :class:`ClusterOptions`: where a job runs on a Ray cluster;
- :class:`ImageRequest`: the one output the service answers with.

This module imports neither numpy nor torch (``p3m --help`` builds every parser from it).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from p3m.errors import OptionError, choice_error

# The allowed values, each listed once.
METHODS = ("hybrid", "resize")                      # the published test strategies
PRECISIONS = ("fp32", "bf16", "fp16")
SIZINGS = ("aspect", "published")                   # p3m.inference.sizing
OUTPUT_KINDS = ("alpha", "cutout", "composite", "frames")  # frames: a video's RGBA PNG sequence
#: The engines named by a word (p3m.inference.factory): auto, the default engine, the live engine, P3M-Net.
ENGINE_KEYWORDS = ("auto", "default", "live", "p3m")
VIDEO_CUTOUTS = ("webm", "mov")  # a video's transparent cut-out: VP9 WebM, or ProRes 4444 MOV
#: A video's temporal step (p3m.video.temporal): flow (the default), edges (the earlier band-only smoother), off.
TEMPORAL_MODES = ("flow", "edges", "off")
IMAGE_KINDS = ("alpha", "cutout", "composite")      # what one image can be turned into
DETECTORS = ("auto", "hog", "cnn", "blazeface", "hog+blazeface", "cnn+blazeface", "hog+blazeface+mtcnn",
             "cnn+blazeface+mtcnn")
#: Blur sigma as a fraction of the face width. A few percent does not stop face
#: recognition; around a tenth or more does (docs/privacy.md).
STRENGTHS = {"low": 0.05, "medium": 0.12, "high": 0.20}
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")



@dataclass(frozen=True)
class Option:
    """How one field of an option set is given, checked and explained."""

    help: str
    choices: tuple[str, ...] | Callable[[], Iterable[str]] | None = None
    many: bool = False                   # a comma list of choices (a tuple in Python)
    number: type | None = None           # int or float
    low: float | None = None
    high: float | None = None
    open_low: bool = False               # low itself is not allowed
    check: Callable[[Any, str], Any] | None = None  # (value, source) -> value, for rules beyond the above
    flag: str | None = None              # the command line's flag; default --name-with-dashes
    aliases: tuple[str, ...] = ()        # other flags for the same option
    negative: str | None = None          # a True-by-default switch: the flag that turns it off
    cli: bool = True                     # the command line offers it
    service: bool = False                # the service takes it as a parameter
    metavar: str | None = None
    switch: bool = False                 # an on/off flag on the command line and in the service, whatever its type
    shown_default: str | None = None     # what a None default means, for the help (P3M-Net's defaults)

    def allowed(self) -> tuple[str, ...] | None:
        if self.choices is None:
            return None
        return tuple(self.choices() if callable(self.choices) else self.choices)

    def parse(self, name: str, value: Any, source: str = "python", *, kind: Any = None) -> Any:
        """``value`` checked and normalised (text from the command line or the service
        becomes the field's type); an :class:`OptionError` naming ``name`` otherwise."""
        if value is None:
            return None
        if kind is bool or kind == "bool":
            value = boolean(name, value)
        elif self.number is not None:
            value = self._number(name, value)
        elif self.choices is not None:
            value = self._choice(name, value)
        if self.check is not None:
            value = self.check(value, source)
        return value

    def _choice(self, name: str, value: Any) -> Any:
        allowed = self.allowed()
        if self.many:
            items = value.split(",") if isinstance(value, str) else list(value)
            if not all(isinstance(i, str) for i in items):
                raise choice_error(name, value, allowed)
            items = [i.strip().lower() for i in items if i.strip()]
            bad = [i for i in items if i not in allowed]
            if bad or not items:
                raise OptionError(f"{name} must be a comma list of {', '.join(allowed)}; got {value!r}")
            return tuple(dict.fromkeys(items))
        if not isinstance(value, str) or value.lower() not in allowed:
            raise choice_error(name, value, allowed)
        return value.lower()

    def _number(self, name: str, value: Any) -> Any:
        whole = self.number is int
        try:
            if isinstance(value, bool):
                raise ValueError
            parsed = float(value)
        except (TypeError, ValueError):
            parsed = math.nan
        low_ok = self.low is None or (parsed > self.low if self.open_low else parsed >= self.low)
        fits = math.isfinite(parsed) and low_ok and (self.high is None or parsed <= self.high)
        if not fits or (whole and not parsed.is_integer()):
            raise OptionError(f"{name} must be {self.bounds()}; got {value!r}")
        return int(parsed) if whole else parsed

    def bounds(self) -> str:
        """The allowed numbers in words: 'a whole number from 1 to 4096', 'a number above 0 and at most 2'."""
        kind = "a whole number" if self.number is int else "a number"
        if self.low is not None and self.high is not None and not self.open_low:
            return f"{kind} from {self.low:g} to {self.high:g}"
        parts = []
        if self.low is not None:
            parts.append(f"{'above' if self.open_low else 'at least'} {self.low:g}")
        if self.high is not None:
            parts.append(f"at most {self.high:g}")
        return f"{kind} {' and '.join(parts)}".strip()


def boolean(name: str, value: Any) -> bool:
    """``value`` as a switch: True/False, or their words (true/false, yes/no, on/off, 1/0)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE + FALSE:
        return value.strip().lower() in TRUE
    raise OptionError(f"{name} must be true or false; got {value!r}")


def option(default: Any, help: str, **how: Any) -> Any:
    """A dataclass field carrying its :class:`Option`."""
    meta = {"option": Option(help, **how)}
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def restate(owner: type, name: str, default: Any) -> Any:
    """``owner``'s option ``name`` (the one definition) with another default, for a
    set whose jobs need another (anonymize runs one worker by default, matte two)."""
    return field(default=default, metadata=owner.__dataclass_fields__[name].metadata)


@dataclass(frozen=True)
class OptionSet:
    """A set of options, validated when made."""


    def __post_init__(self) -> None:
        for f, spec in self.options():
            value = getattr(self, f.name)
            if value is None and self.default(f.name) is not None:
                raise OptionError(f"{f.name} must be given (default {self.default(f.name)!r}); got None")
            object.__setattr__(self, f.name, spec.parse(f.name, value, kind=_kind(f)))
        self.check()

    def check(self) -> None:
        """Rules across options (after each one was checked alone)."""

    @classmethod
    def options(cls) -> list[tuple[dataclasses.Field, Option]]:
        return [(f, f.metadata["option"]) for f in dataclasses.fields(cls) if "option" in f.metadata]

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f, _ in cls.options()]

    @classmethod
    def default(cls, name: str) -> Any:
        f = cls.__dataclass_fields__[name]
        return f.default_factory() if f.default is dataclasses.MISSING else f.default

    @classmethod
    def spec(cls, name: str) -> Option:
        return cls.__dataclass_fields__[name].metadata["option"]

    @classmethod
    def from_values(cls, values: Mapping[str, Any], source: str = "python", **fixed: Any):
        """The set from ``values`` (text or Python values), refusing names it does not have."""
        unknown = sorted(set(values) - set(cls.names()))
        if unknown:
            raise unknown_options(unknown, cls.names())
        parsed = {name: cls.spec(name).parse(name, value, source, kind=_kind(cls.__dataclass_fields__[name]))
                  for name, value in values.items()}
        return cls(**parsed, **fixed)

    def given(self) -> dict[str, Any]:
        """The options that differ from their defaults."""
        return {name: getattr(self, name) for name in self.names() if getattr(self, name) != self.default(name)}

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.names()}


def _kind(f: dataclasses.Field) -> Any:
    return bool if f.type in ("bool", bool) else None


def unknown_options(names: Iterable[str], accepted: Iterable[str]) -> OptionError:
    names = list(names)
    return OptionError(f"unknown option{'s' if len(names) > 1 else ''} {', '.join(map(repr, names))}; "
                       f"accepted: {', '.join(accepted)}")


def _architectures() -> list[str]:
    from p3m.architectures import architecture_names

    return architecture_names()


def _arch(value: str, source: str) -> str:
    from p3m.architectures import canonical_arch

    return canonical_arch(value)


def _engine(value: Any, source: str) -> Any:
    """An engine spec: a keyword (any case), a name, a file or onnx:FILE; never empty."""
    if not isinstance(value, str):
        return value  # a network or an engine object, in Python: open_engine checks it
    text = value.strip()
    if not text or text.lower() == "onnx:":
        raise OptionError(f"engine must name an engine ({', '.join(ENGINE_KEYWORDS)}), installed weights, a checkpoint "
                          f"file or onnx:FILE; got {value!r}")
    return text.lower() if text.lower() in ENGINE_KEYWORDS else text


def _address(value: str, source: str) -> str:
    """'auto', HOST:PORT or ray://HOST:PORT, with a port from 1 to 65535."""
    text = value.strip() if isinstance(value, str) else ""
    host, _, port = text.removeprefix("ray://").rpartition(":")
    if text != "auto" and not (host and port.isdigit() and 1 <= int(port) <= 65535):
        raise OptionError(f"address must be auto, HOST:PORT or ray://HOST:PORT (port 1 to 65535); got {value!r}")
    return text


def _device(value: str, source: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise OptionError(f"device must be auto, cpu, cuda or cuda:N; got {value!r}")
    return value.strip().lower()


#: What P3M-Net takes when a network option is left as None.
NETWORK_DEFAULTS = {"method": "hybrid", "precision": "fp32", "max_size": 1600, "sizing": "aspect"}
#: The default engine's settings (segmentation + closed-form matting), when not given.
DEFAULT_ENGINE_DEFAULTS = {"work_size": 400, "band": 0.02}


@dataclass(frozen=True)
class EngineOptions(OptionSet):
    """What runs (``engine``) and how. Network options left as None take P3M-Net's
    defaults (:data:`NETWORK_DEFAULTS`); given for an engine that has no use for them,
    they are an error (:func:`p3m.inference.factory.open_engine`)."""

    engine: str = option("auto", "what runs: auto (installed P3M-Net weights, else the default engine), default "
                         "(segmentation + closed-form matting, no P3M-Net needed), live (segmentation + guided filter, "
                         "at frame rate for cameras), p3m (installed P3M-Net weights), "
                         "an installed weights name (p3m weights list), a checkpoint file or onnx:FILE",
                         check=_engine, metavar="ENGINE")
    arch: str | None = option(None, "network architecture (default: recognised from the weights)",
                              choices=_architectures, check=_arch, aliases=("--model",))
    method: str | None = option(None, "P3M-Net test strategy", choices=METHODS, service=True,
                                shown_default=NETWORK_DEFAULTS["method"])
    device: str | None = option(None, "auto, cpu, cuda, cuda:1, ...", check=_device, shown_default="auto")
    precision: str | None = option(None, "autocast precision of P3M-Net", choices=PRECISIONS,
                                   shown_default=NETWORK_DEFAULTS["precision"])
    max_size: int | None = option(None, "longest P3M-Net input side", number=int, low=32, high=100_000,
                                  shown_default=str(NETWORK_DEFAULTS["max_size"]))
    sizing: str | None = option(None, "aspect keeps the picture's proportions; published clips height and width to "
                                "max_size separately, as the authors' code (squashes large images)",
                                choices=SIZINGS, shown_default=NETWORK_DEFAULTS["sizing"])
    batch_size: int = option(1, "same-size images per forward pass", number=int, low=1, high=4096)
    work_size: int | None = option(None, "the default engine's working size: closed-form matting runs with the long "
                                   "side at this many pixels (larger: finer edges, slower)", number=int, low=64,
                                   high=4096, service=True, shown_default=str(DEFAULT_ENGINE_DEFAULTS["work_size"]))
    band: float | None = option(None, "the default engine's unknown band around the person's outline, a fraction of "
                                "the long side (wider: more hair solved, more background mistaken)", number=float,
                                low=0.002, high=0.2, service=True, shown_default=str(DEFAULT_ENGINE_DEFAULTS["band"]))

    def network(self) -> dict[str, Any]:
        """The keyword arguments of ``open_engine`` besides the spec."""
        return {name: getattr(self, name) for name in self.names() if name != "engine"}



def _background(value: Any, source: str) -> Any:
    """A colour, 'blur', or (not from the service: a string there naming a file would read
    the server's disk) an image file; in Python also an (r, g, b) tuple or an image."""
    if not isinstance(value, str):
        colour = isinstance(value, tuple) and len(value) == 3 and all(isinstance(v, numbers.Integral) and 0 <= v <= 255
                                                                       for v in value)
        if colour or hasattr(value, "shape") or hasattr(value, "getbands") or hasattr(value, "for_image"):
            return value  # an (r, g, b) colour, an image array or PIL image, or a Background
        raise OptionError(f"background must be a colour, 'blur', an image file, an (r, g, b) tuple or an image; "
                          f"got {value!r}")
    from p3m.colours import parse_colour

    if parse_colour(value) is not None or value.strip().lower() == "blur":
        return value.strip().lower()
    if source != "service" and Path(value).is_file():
        return value
    # One message wherever it came from; the service never says whether a file exists on its disk.
    raise OptionError(f"background {value!r}: not a CSS colour (navy, #0f0, rgb(0,255,0)), 'r,g,b' or 'blur', nor "
                      "an image file (the service reads no files: upload an image as 'background_image')")


@dataclass(frozen=True)
class FaceBlurOptions(OptionSet):
    """How faces are blurred and checked: the fail-closed blur of
    :func:`p3m.privacy.anonymize.anonymize`, for ``p3m anonymize`` and private cut-outs."""

    strength: str = option("medium", "blur sigma 0.05 / 0.12 / 0.20 x face width", choices=tuple(STRENGTHS),
                           service=True)
    sigma_scale: float | None = option(None, "explicit blur sigma as a fraction of the face width (instead of "
                                       "strength)", number=float, low=0, high=2, open_low=True, service=True)
    forehead: float = option(0.3, "lift of the blurred region above the brows, x face height", number=float,
                             low=0, high=2, service=True)
    protect_dilation: int = option(0, "grow the protected transition pixels of the matte by this many pixels",
                                   number=int, low=0, high=100, service=True)
    detector: str = option("auto", "face detector families: auto = hog+blazeface+mtcnn with the face models (p3m "
                           "weights fetch faces), else hog alone with reduced recall; cnn is dlib's CNN (about 45 s "
                           "a photo)",
                           choices=DETECTORS, service=True)
    allow_no_face: bool = option(False, "write images where no face is found instead of holding them back: "
                                 "with the heads of the people seen blurred (back views), or unchanged when no "
                                 "one is seen", service=True)
    hold_unaudited: bool = option(False, "hold back images in which something blurred cannot be identity-audited "
                                  "(the head of a person whose face was not found, a weak detection no second "
                                  "opinion calls a face): every face found or seen is then audited (a hand-drawn "
                                  "mask is the user's own), at the cost of more images held back", service=True)

    def check(self) -> None:
        if self.sigma_scale is not None and self.strength != FaceBlurOptions.default("strength"):
            raise OptionError(f"strength {self.strength!r} and sigma_scale {self.sigma_scale:g} both set the blur; "
                              "give one")

    @property
    def scale(self) -> float:
        """The starting blur: sigma as a fraction of the face width."""
        return self.sigma_scale if self.sigma_scale is not None else STRENGTHS[self.strength]

    def face_options(self) -> FaceBlurOptions:
        """Only the face options (a subclass's run options dropped)."""
        return FaceBlurOptions(**{name: getattr(self, name) for name in FaceBlurOptions.names()})


@dataclass(frozen=True)
class RunOptions(OptionSet):
    """How a job over many inputs runs."""

    overwrite: bool = option(False, "redo inputs whose outputs exist (otherwise a rerun resumes)")
    workers: int = option(2, "threads for decoding, writing and (anonymize) images in parallel", number=int,
                          low=1, high=256)
    max_pixels: int = option(50_000_000, "refuse larger images", number=int, low=1, metavar="PIXELS")


def _anonymize(value: Any, source: str) -> FaceBlurOptions | None:
    if isinstance(value, str):
        value = boolean("anonymize", value)
    if value is True:
        return FaceBlurOptions()
    if value is False or value is None:
        return None
    if isinstance(value, FaceBlurOptions):
        return value.face_options()
    raise OptionError(f"anonymize must be true, false or FaceBlurOptions; got {value!r}")


@dataclass(frozen=True)
class MatteOptions(RunOptions):
    """What is made of each image: the outputs, their background and bits, and
    (``anonymize``) faces blurred in them by the fail-closed blur of ``p3m anonymize``."""

    save: tuple[str, ...] = option(("alpha",), "comma list of alpha, cutout, composite, frames. For a video: alpha "
                                   "and composite are MP4 (H.264), cutout a transparent WebM (VP9), frames a folder "
                                   "of RGBA PNGs; one output file: by its extension", choices=OUTPUT_KINDS, many=True,
                                   metavar="KINDS")
    background: Any = option(None, "composite background: a CSS colour (navy, #0f0, rgb(0,255,0)), r,g,b, "
                             "chroma-green, chroma-blue, 'blur' or an image file (default white)", check=_background,
                             service=True)
    premultiplied: bool = option(False, "cut-out colours = image x alpha (the published variant) instead of the "
                                 "estimated foreground", service=True)
    alpha_16bit: bool = option(False, "write 16-bit alpha PNGs")
    video_cutout: str = option("webm", "videos: the cut-out's file: webm = VP9 with alpha (browsers), mov = ProRes "
                               "4444 with alpha (video editors)", choices=VIDEO_CUTOUTS)
    temporal: str = option("flow", "videos and frame streams: temporal consistency. flow = the previous alpha "
                           "carried along optical flow and blended in where the scene is still and the flow "
                           "reliable; edges = the earlier smoother of the edge band only; off = each frame alone "
                           "(docs/video.md)", choices=TEMPORAL_MODES)
    anonymize: Any = option(None, "blur every face in the outputs with the fail-closed, audited blur of p3m "
                            "anonymize (the alpha comes from the original photo; an image whose face stays "
                            "identifiable, or that has no face, is held back)", check=_anonymize, service=True,
                            switch=True)

    def check(self) -> None:
        if self.alpha_16bit and "alpha" not in self.save:
            raise OptionError("alpha_16bit applies to alpha outputs: ask for the alpha, or leave alpha_16bit out")
        if self.background is not None and "composite" not in self.save:
            raise OptionError(f"background {_shown(self.background)} applies to composite outputs: ask for a "
                              "composite, or leave background out")
        if self.video_cutout != self.default("video_cutout") and "cutout" not in self.save:
            raise OptionError(f"video_cutout {self.video_cutout!r} applies to cut-outs: ask for a cut-out, or leave "
                              "video_cutout out")
        if self.premultiplied and "cutout" not in self.save and "frames" not in self.save:
            raise OptionError("premultiplied applies to cut-out outputs: ask for a cut-out, or leave premultiplied out")


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, (str, tuple)) else "(an image)"


def face_options_for(anonymize: Any, values: Mapping[str, Any], source: str) -> FaceBlurOptions | None:
    """The face options of a private cut-out, from the ``anonymize`` switch as given (a
    boolean, its word, None, or FaceBlurOptions) and the face options given beside it:
    those apply only with anonymize, and never beside a FaceBlurOptions; given without
    it they are an error, never silently dropped."""
    if isinstance(anonymize, FaceBlurOptions):
        if values:
            raise OptionError(f"give {', '.join(values)} in the FaceBlurOptions, not beside them")
        return anonymize.face_options()
    if _anonymize(anonymize, source) is None:
        if values:
            names = ", ".join(values)
            raise OptionError(f"{names} appl{'ies' if len(values) == 1 else 'y'} to face anonymization: add "
                              f"anonymize, or leave {'it' if len(values) == 1 else 'them'} out")
        return None
    return FaceBlurOptions.from_values(values, source)


@dataclass(frozen=True)
class AnonymizeOptions(FaceBlurOptions, RunOptions):
    """``p3m anonymize``: the face options, the run options, and the folders it reads."""

    workers: int = restate(RunOptions, "workers", 1)
    alpha_dir: Path | None = option(None, "folder of mattes (same relative paths or stems): their transition pixels "
                                    "stay exact", flag="--alpha", check=lambda v, s: Path(v), metavar="FOLDER")
    facemask_dir: Path | None = option(None, "folder of hand-drawn face masks, used where no face is found",
                                       flag="--facemask", check=lambda v, s: Path(v), metavar="FOLDER")
    jpeg_quality: int | None = option(None, "JPEG quality 1..100 (default: keep the input's)", number=int, low=1,
                                      high=100)


@dataclass(frozen=True)
class ClusterOptions(OptionSet):
    """Where and how wide a job runs on Ray: ``cluster`` is ``auto`` (the cluster this
    machine belongs to, or ``RAY_ADDRESS``), ``HOST:PORT`` of a head node, or
    ``ray://HOST:PORT``. Each actor opens the engine of ``engine_options`` once."""

    address: str = option("auto", "spread the items over Ray actors: 'auto' (this machine's cluster or $RAY_ADDRESS), "
                          "HOST:PORT of a head node, or ray://HOST:PORT; inputs and -o must be on paths every node "
                          "reads", flag="--cluster", check=_address, metavar="ADDRESS")
    actors: int = option(0, "actors (default 0: one per CPU, or per GPU)", number=int, low=0, high=100_000)
    cpus_per_actor: float = option(1.0, "CPUs per actor", number=float, low=0.01, high=1024, flag="--actor-cpus")
    gpus_per_actor: float = option(0.0, "GPUs per actor", number=float, low=0, high=64, flag="--actor-gpus")
    engine_options: Any = field(default=None)

    def __post_init__(self) -> None:
        super().__post_init__()
        given = self.engine_options
        if given is None or isinstance(given, Mapping):
            given = EngineOptions(**dict(given or {}))
        if not isinstance(given, EngineOptions):
            raise OptionError(f"engine_options must be EngineOptions or a mapping; got {given!r}")
        object.__setattr__(self, "engine_options", given)


@dataclass(frozen=True)
class ImageRequest(OptionSet):
    """The service's answer to ``/v1/matte``: one image."""

    output: str = option("cutout", "what comes back: cutout (RGBA PNG), alpha (gray PNG) or composite (RGB PNG on "
                         "background)", choices=IMAGE_KINDS, service=True, cli=False)


def service_options(endpoint: str) -> list[tuple[str, type[OptionSet]]]:
    """The parameters of a service endpoint, in order, each with the set that defines it."""
    faces = [(name, FaceBlurOptions) for name in FaceBlurOptions.names() if FaceBlurOptions.spec(name).service]
    if endpoint == "anonymize":
        return faces
    looks = [(name, MatteOptions) for name in MatteOptions.names() if MatteOptions.spec(name).service]
    engine = [(name, EngineOptions) for name in EngineOptions.names() if EngineOptions.spec(name).service]
    return [("output", ImageRequest), *engine, *looks, *faces]
