"""Every exception p3m raises for bad input, in one place.

Each is a :class:`P3MError` whose message names the file (or argument) and the
problem; the command line prints that message as one line instead of a traceback.
Callers catch ``P3MError`` for "the user's input was wrong" and let anything else
surface as a bug.
"""


class P3MError(Exception):
    """Base class of all errors p3m raises for bad input."""


class OptionError(P3MError):
    """An option value outside its allowed set or range (method, precision, sizing, ...)."""


class ArchitectureError(OptionError):
    """An unknown architecture name or architecture option."""


class CheckpointError(P3MError):
    """A weight file is missing, unreadable, unsafe or does not fit the network."""


class ModelMissingError(CheckpointError):
    """A pinned model file is not installed (or not the pinned one). ``remedy`` says it
    without the file's path, for those who may not see the machine's disk (the service)."""

    def __init__(self, message: str, remedy: str) -> None:
        super().__init__(message)
        self.remedy = remedy


class EngineError(P3MError):
    """The engine asked for cannot be opened (nothing installed, options it does not take)."""


class InapplicableOptionError(EngineError, OptionError):
    """An option given for an engine (or a run) that has no use for it: refused, never dropped."""


class HeldBackError(P3MError):
    """An image deliberately not produced (fail closed): its faces could not be anonymized.
    ``privacy`` holds the outcome and audit (:class:`p3m.privacy.anonymize.AnonymizeResult`)."""

    def __init__(self, reason: str, privacy=None) -> None:
        super().__init__(reason)
        self.privacy = privacy


class OutputError(P3MError):
    """An output that may not or cannot be written (outside the output folder, onto an input, no folder)."""


class ImageError(P3MError):
    """An input image or matte that cannot be used (unreadable, empty, too large, ...)."""


class ImageTooLargeError(ImageError):
    """An image over the pixel limit, or a possible decompression bomb."""


class MetricInputError(P3MError):
    """Prediction, ground truth or trimap of the wrong shape or type."""


class DatasetError(P3MError):
    """A dataset folder that is missing or not laid out as expected."""


class TrainingError(P3MError):
    """Training cannot start or must stop (bad data past the threshold, missing files)."""


class PrivacySetupError(P3MError):
    """Face detection is not available (dlib or its models missing)."""


class VideoError(ImageError):
    """A video that cannot be read or written (corrupt, no video stream, unsupported)."""


def choice_error(what: str, value, allowed) -> OptionError:
    """The one wording of "value not among the allowed ones"."""
    return OptionError(f"{what} must be one of {', '.join(map(str, allowed))}; got {value!r}")
