"""The one writer of the report's Markdown tables: a header, its separator, one line per row of formatted cells."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def _line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """The lines of a GitHub Markdown table; every cell comes formatted, so each table keeps its own precision."""
    return [_line(header), "|---" * len(header) + "|", *(_line(row) for row in rows)]
