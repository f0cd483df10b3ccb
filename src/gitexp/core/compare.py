"""What `show` and `diff` compute, as pure functions over parsed runs and states.

Nothing here reads git or prints; the CLI feeds it data and hands the result to render.py.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gitexp.core.metrics import delta, ordered, relative
from gitexp.core.query import evaluate, keys_of, parse_filter
from gitexp.errors import UsageError

FIXED_COLUMNS = ("name", "rev", "base", "created", "status", "duration", "note", "message")


@dataclass(frozen=True)
class Entry:
    """One row of `show`: a run, or a plain revision (whose fixed fields may be empty)."""

    name: str
    rev: str
    base: str | None
    created: str | None
    status: str | None
    duration: float | None
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    carried: dict[str, dict[str, Any]] = field(default_factory=dict)  # not the run's own
    dvc_experiment: bool = False  # a DVC experiment (refs/exps/), not a gitexp run
    note: str | None = None  # said of the run after it ended (gitexp note)
    message: str | None = None  # given when it ran (-m)

    def fixed(self, column: str) -> Any:
        return getattr(self, column)


@dataclass(frozen=True)
class Column:
    """A param or metric column: `label` is the key alone unless another file has it too."""

    kind: str  # 'params' or 'metrics'
    path: str
    key: str
    label: str


def columns_of(entries: Sequence[Entry]) -> list[Column]:
    found: dict[tuple[str, str, str], None] = {}
    for kind, attribute in (("params", "params"), ("metrics", "metrics"), ("metrics", "carried")):
        for entry in entries:
            for path, flat in getattr(entry, attribute).items():
                for key in flat:
                    found[(kind, path, key)] = None
    files_per_key: dict[str, set[tuple[str, str]]] = {}
    for kind, path, key in found:
        files_per_key.setdefault(key, set()).add((kind, path))
    return [
        Column(kind, path, key, key if len(files_per_key[key]) == 1 else f"{path}:{key}")
        for kind, path, key in found
    ]


def value_of(entry: Entry, column: Column) -> Any:
    return getattr(entry, column.kind).get(column.path, {}).get(column.key)


def carried_of(entry: Entry, column: Column) -> Any:
    """A metric the run left as it found it (shown apart, never sorted or filtered on)."""
    if column.kind != "metrics":
        return None
    return entry.carried.get(column.path, {}).get(column.key)


class KeyIndex:
    """Finds what a user-typed key means: a fixed field, `tags.NAME`, a param or a metric
    by its key alone, by `file:key`, or by `params.KEY` / `metrics.KEY` (MLflow's form)."""

    def __init__(self, columns: Sequence[Column]) -> None:
        self.columns = columns
        self.by_name: dict[str, list[Column]] = {}
        for col in columns:
            for name in (col.key, f"{col.path}:{col.key}", f"{col.kind}.{col.key}"):
                self.by_name.setdefault(name, []).append(col)

    def resolve(self, key: str) -> Column | str:
        if key in FIXED_COLUMNS or key.startswith("tags."):
            return key
        matches = self.by_name.get(key, [])
        if len(matches) == 1:
            return matches[0]
        if matches:
            options = ", ".join(f"{c.path}:{c.key}" for c in matches)
            raise UsageError(f"key '{key}' is ambiguous: write one of {options}")
        labels = sorted({c.label for c in self.columns})
        near = difflib.get_close_matches(key, labels, n=3)
        hint = f"did you mean {' or '.join(near)}? " if near else ""
        known = ", ".join(labels[:12]) or "none"
        more = f" and {len(labels) - 12} more (see 'gitexp show')" if len(labels) > 12 else ""
        raise UsageError(f"unknown key '{key}': {hint}the keys are {known}{more}")

    def lookup(self, entry: Entry, key: str) -> Any:
        target = self.resolve(key)
        if isinstance(target, Column):
            return value_of(entry, target)
        if target.startswith("tags."):
            return entry.tags.get(target[5:])
        return entry.fixed(target)


def select(
    entries: Sequence[Entry],
    *,
    filter_expr: str | None = None,
    sort_by: str | None = None,
    descending: bool = False,
    limit: int | None = None,
) -> list[Entry]:
    """Filters, sorts and cuts the entries as `show` does; unknown keys are errors."""
    index = KeyIndex(columns_of(entries))
    result = list(entries)
    if filter_expr:
        tree = parse_filter(filter_expr)
        for key in keys_of(tree):
            index.resolve(key)
        result = [e for e in result if evaluate(tree, lambda k, e=e: index.lookup(e, k))]
    if sort_by:
        index.resolve(sort_by)
        result = ordered(result, lambda e: index.lookup(e, sort_by), descending)
    if limit is not None:
        result = result[:limit]
    return result


def visible_columns(
    entries: Sequence[Entry],
    only_changed: bool,
    keep: Sequence[str] = (),
    drop: Sequence[str] = (),
    kinds: Sequence[str] = ("params", "metrics"),
) -> list[Column]:
    """The param and metric columns to show: of the kinds asked, those matching a `keep`
    glob (all without one), none matching a `drop` glob (as `dvc exp show --keep/--drop`;
    a glob matches the key, `file:key` or the column's label), and with `only_changed`
    only those that differ between the entries."""
    columns = [c for c in columns_of(entries) if c.kind in kinds]

    def matches(column: Column, patterns: Sequence[str]) -> bool:
        names = (column.key, column.label, f"{column.path}:{column.key}")
        return any(fnmatch.fnmatchcase(n, p) for n in names for p in patterns)

    if keep:
        columns = [c for c in columns if matches(c, keep)]
    columns = [c for c in columns if not matches(c, drop)]
    if only_changed and len(entries) > 1:
        columns = [c for c in columns if len({repr(value_of(e, c)) for e in entries}) > 1]
    return columns


# --- diff -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    kind: str  # 'params' or 'metrics'
    path: str
    key: str
    old: Any
    new: Any
    in_old: bool
    in_new: bool

    @property
    def diff(self) -> Any:
        return delta(self.old, self.new)

    @property
    def relative(self) -> float | None:
        return relative(self.old, self.new)

    @property
    def changed(self) -> bool:
        return self.in_old != self.in_new or not _same(self.old, self.new)


def _same(a: Any, b: Any) -> bool:
    # NaN equals NaN here: an unchanged NaN metric is not a change.
    return repr(a) == repr(b) and type(a) is type(b)


def diff_sections(
    old: dict[str, dict[str, dict[str, Any]]],
    new: dict[str, dict[str, dict[str, Any]]],
    show_all: bool = False,
) -> list[Change]:
    """Every param and metric that differs between two sides (all of them with show_all).

    `old` and `new` map 'params'/'metrics' to {file: {key: value}}.
    """
    changes = []
    for kind in ("params", "metrics"):
        paths = list(dict.fromkeys([*old.get(kind, {}), *new.get(kind, {})]))
        for path in paths:
            a = old.get(kind, {}).get(path, {})
            b = new.get(kind, {}).get(path, {})
            for key in dict.fromkeys([*a, *b]):
                change = Change(kind, path, key, a.get(key), b.get(key), key in a, key in b)
                if show_all or change.changed:
                    changes.append(change)
    return changes


def diff_json(changes: Iterable[Change]) -> dict[str, Any]:
    """DVC's `exp diff --json` shape."""
    out: dict[str, Any] = {"params": {}, "metrics": {}}
    for c in changes:
        # numeric params get their difference too, as DVC's `exp diff --json` gives it
        item: dict[str, Any] = {"old": c.old, "new": c.new, "diff": delta(c.old, c.new, True)}
        out[c.kind].setdefault(c.path, {})[c.key] = item
    return out
