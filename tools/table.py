"""Rows for the command line, as an aligned text table, CSV or JSON: one formatter for
every view (`blockiot chain ...`, status views).

A row is a dict of plain values (str, int, float, bool, None, lists of them). JSON and CSV
carry every key of the rows, the values as they are (CSV: a list joined with commas, None
empty); the text table shows the chosen `Column`s, numbers right-aligned, each cell
through its column's `text` if it has one (a shortened id, say).

    add_format_flags(parser)                                  # --json | --csv
    emit(rows, [Column("height"), Column("id", text=lambda v: v[:16])], output_format(args))
    print(key_values([("height", 12), ("leader", "gw-1")]))  # one record, aligned
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Callable, Iterable

FORMATS = ("text", "csv", "json")


@dataclass(frozen=True)
class Column:
    """One column of the text table: the row key, its heading (default: the key in
    capitals) and how a cell reads (default: `cell_text`)."""

    key: str
    title: str = ""
    text: Callable[[object], str] | None = None

    @property
    def heading(self) -> str:
        return self.title or self.key.upper()


def add_format_flags(parser) -> None:
    """--json and --csv (one of them at most); text by default."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_true", help="print JSON (an array of objects)")
    group.add_argument("--csv", action="store_true", help="print CSV with a header line")


def output_format(args) -> str:
    return "json" if args.json else "csv" if args.csv else "text"


def cell_text(value) -> str:
    """A value as the text table and CSV show it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ",".join(cell_text(v) for v in value)
    return str(value)


def render(rows: list[dict], columns: Iterable[Column], fmt: str) -> str:
    """The rows in `fmt` ("text", "csv" or "json"), without a final newline."""
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False)
    if fmt == "csv":
        keys = list(rows[0]) if rows else [column.key for column in columns]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(keys)
        writer.writerows([cell_text(row.get(key)) for key in keys] for row in rows)
        return out.getvalue().rstrip("\n")
    columns = list(columns)
    cells = [[(column.text or cell_text)(row.get(column.key)) for column in columns] for row in rows]
    widths = [max([len(column.heading)] + [len(line[i]) for line in cells]) for i, column in enumerate(columns)]
    right = [
        bool(rows) and all(isinstance(row.get(c.key), (int, float)) and not isinstance(row.get(c.key), bool)
                           for row in rows if row.get(c.key) is not None)
        for c in columns
    ]
    lines = [[column.heading for column in columns]] + cells
    return "\n".join(
        "  ".join(cell.rjust(w) if r else cell.ljust(w) for cell, w, r in zip(line, widths, right)).rstrip()
        for line in lines
    )


def emit(rows: list[dict], columns: Iterable[Column], fmt: str) -> None:
    print(render(rows, columns, fmt))


def key_values(pairs: Iterable[tuple[str, object]]) -> str:
    """One record as aligned `key  value` lines."""
    pairs = list(pairs)
    width = max((len(key) for key, _ in pairs), default=0)
    return "\n".join(f"{key.ljust(width)}  {cell_text(value)}".rstrip() for key, value in pairs)
