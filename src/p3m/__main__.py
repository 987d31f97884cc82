"""``python -m p3m`` (also what ``torchrun -m p3m`` runs)."""

from p3m.cli.main import entry_point

entry_point()
