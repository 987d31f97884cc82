"""What the command line tells people on stderr: notes, which ``--quiet`` silences, and
problems (an error, an image held back or failed), which it never does."""

from __future__ import annotations

import sys

#: Set by :func:`p3m.cli.main.main` from ``--quiet`` for each command run.
quiet = False


def note(text: str) -> None:
    """A line about progress or what ran (the engine, what was written, the totals)."""
    if not quiet:
        print(f"p3m: {text}", file=sys.stderr, flush=True)


def problem(text: str) -> None:
    """A line about something that went wrong or was held back: always shown."""
    print(f"p3m: {text}", file=sys.stderr, flush=True)
