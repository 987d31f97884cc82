"""Exception types of the public API.

Every error the library raises on bad input is a :class:`P3MError`, whose message
names the file (or argument) and the problem; the command line prints that message
as one line instead of a traceback.
"""


class P3MError(Exception):
    """Base class of all errors p3m raises for bad input."""


class CheckpointError(P3MError):
    """A weight file is missing, unreadable, unsafe or does not fit the network."""


class ArchitectureError(P3MError):
    """An unknown architecture name or option."""
