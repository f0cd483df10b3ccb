"""One place that turns rows into text: a terminal table, JSON, CSV or Markdown.

Every listing command goes through `render_rows`, so the formats never drift apart.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

FORMATS = ("table", "json", "csv", "md")


@dataclass(frozen=True)
class Carried:
    """A metric a run left as it found it: shown in parentheses, apart from its own."""

    value: Any


def json_safe(value: Any) -> Any:
    """Plain JSON: NaN and infinities become the strings "NaN", "Infinity", "-Infinity"
    (Python's json would write bare NaN, which other parsers reject; row M1)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def to_json(data: Any) -> str:
    return json.dumps(json_safe(data), indent=2, allow_nan=False)


def format_value(value: Any, precision: int = 6) -> str:
    """A cell for humans: numbers to `precision` significant digits, '-' for missing."""
    if value is None:
        return "-"
    if isinstance(value, Carried):
        return f"({format_value(value.value, precision)})"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.{precision}g}"
    if isinstance(value, (list, dict)):
        return json.dumps(json_safe(value))
    return str(value)


def escape_markdown(text: str) -> str:
    """A table cell that cannot break the table or inject markup (row X4)."""
    text = " ".join(text.splitlines())
    text = text.replace("\\", "\\\\").replace("|", "\\|")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("@", "@\u200b")


def render_rows(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    fmt: str,
    precision: int = 6,
    json_data: Any = None,
) -> str:
    """Rows as text in one of FORMATS. JSON prints `json_data` when given (a richer shape
    than the table), otherwise a list of objects keyed by the headers."""
    if fmt == "json":
        if json_data is None:
            json_data = [dict(zip(headers, row, strict=True)) for row in rows]
        return to_json(json_data)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(headers)
        for row in rows:
            writer.writerow(["" if v is None else _csv_value(v) for v in row])
        return buf.getvalue().rstrip("\n")
    from tabulate import tabulate  # 35 ms to import: only when a table is printed

    cells = [[format_value(v, precision) for v in row] for row in rows]
    if fmt == "md":
        return tabulate(
            [[escape_markdown(c) for c in row] for row in cells],
            headers=[escape_markdown(h) for h in headers],
            tablefmt="github",
            disable_numparse=True,
        )
    return tabulate(cells, headers=list(headers), tablefmt="simple", disable_numparse=True)


def _csv_value(value: Any) -> str:
    if isinstance(value, Carried):
        return f"({_csv_value(value.value)})"
    if isinstance(value, float):
        return format_value(value, 17) if not math.isfinite(value) else repr(value)
    if isinstance(value, (list, dict)):
        return json.dumps(json_safe(value))
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
