"""Metric files: parse and flatten them, and the rules for values that are not plain numbers.

A metric that cannot be read never stops a run or a listing: the error is kept beside the
values and shown (row R6), and NaN, infinity and strings are values like any other (M1, M2).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from gitexp.core.params import Flat, flatten, parse_document
from gitexp.errors import UsageError

DEFAULT_METRICS_FILE = "metrics.json"
T = TypeVar("T")


def load_metrics(data: bytes, path: str) -> Flat:
    """A metrics file as a flat mapping; raises UsageError for a file that cannot be read."""
    suffix = path.rsplit(".", 1)[-1].lower()
    if suffix in ("csv", "tsv"):
        return _load_table(data, path, "\t" if suffix == "tsv" else ",")
    doc = parse_document(data, path)
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise UsageError(f"{path}: metrics must be a mapping of names to values")
    return flatten(doc, path)


def _load_table(data: bytes, path: str, delimiter: str) -> Flat:
    """The last row of a CSV/TSV file with a header, numbers parsed."""
    try:
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig")), delimiter=delimiter))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"{path}: {exc}") from None
    if not rows:
        return {}
    return {key: parse_number(value) for key, value in rows[-1].items() if key}


def parse_number(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def sort_key(value: Any, descending: bool = False) -> tuple[int, Any]:
    """Orders numbers first, then everything else; NaN and missing values always last."""
    if is_number(value) and not (isinstance(value, float) and math.isnan(value)):
        return (0, -value if descending else value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return (2, 0)
    return (1, str(value))


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def ordered(items: Sequence[T], value: Callable[[T], Any], descending: bool = False) -> list[T]:
    """Items sorted by a value: numbers, then text, each in the order asked (descending too,
    for dates and names); NaN and missing values last both ways. Stable."""
    numbers = [i for i in items if is_number(value(i)) and not missing(value(i))]
    texts = [i for i in items if not is_number(value(i)) and not missing(value(i))]
    numbers.sort(key=value, reverse=descending)
    texts.sort(key=lambda i: str(value(i)), reverse=descending)
    return numbers + texts + [i for i in items if missing(value(i))]


def delta(old: Any, new: Any, exact: bool = False) -> Any:
    """new - old for two finite-or-infinite numbers; None when there is no meaningful delta.
    Shown to people it is rounded to 15 digits; `exact` keeps the float as computed (JSON,
    where DVC prints the same)."""
    if not (is_number(old) and is_number(new)):
        return None
    try:
        result = new - old
    except OverflowError:
        return None
    if isinstance(result, float):
        if math.isnan(result):
            return None
        if exact:
            return result
        # 0.982222 - 0.966667 is -0.015554999999999986 in binary; show -0.015555.
        return float(f"{result:.15g}")
    return result


def relative(old: Any, new: Any) -> float | None:
    change = delta(old, new)
    if change is None or not old or not math.isfinite(old):
        return None
    return change / abs(old)
