"""Tables for people: one renderer for the terminal, Markdown and HTML, with one rule
for formatting numbers (so a metric reads the same in every report)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, Sequence

#: Metrics whose values are small fractions: four decimals; every other number two.
FOUR_DECIMALS = frozenset({"MSE", "MAD", "MSE-T", "MAD-T"})
MISSING = "–"


def format_value(value: Any, key: str | None = None) -> str:
    """The one number-formatting rule: None as a dash, ints as they are, floats with
    four decimals for the small-fraction metrics and two otherwise."""
    if value is None:
        return MISSING
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.4f}" if key in FOUR_DECIMALS else f"{value:.2f}"


@dataclass
class Table:
    columns: Sequence[str]
    rows: list[Sequence[Any]] = field(default_factory=list)
    #: the metric each column holds, for formatting (default: the column label)
    keys: Sequence[str | None] | None = None

    def cells(self) -> list[list[str]]:
        keys = self.keys or self.columns
        return [[format_value(v, k) for v, k in zip(row, keys)] for row in self.rows]

    def to_text(self) -> str:
        """Aligned columns: text left, numbers right."""
        cells = self.cells()
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(self.columns)]
        numeric = [all(_is_number(row[i]) for row in self.rows) and bool(self.rows) for i in range(len(widths))]

        def line(values):
            return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

        return "\n".join([line(self.columns), *(line(r) for r in cells)])

    def to_markdown(self) -> str:
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(row) + " |" for row in self.cells()]
        return "\n".join(lines)

    def to_html(self, table_id: str | None = None) -> str:
        attribute = f" id='{html.escape(table_id)}'" if table_id else ""
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>\n" for row in self.cells())
        return f"<table{attribute}><tr>{head}</tr>\n{body}</table>"


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
