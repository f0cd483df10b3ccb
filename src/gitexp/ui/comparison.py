"""What the compare page shows: the params and metrics of any selection of runs (or
revisions), their histories thinned for charts, and the diff of two of them (code, params,
metrics, data and environment), through the same readers as `show` and `diff`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gitexp.core.compare import Column, Entry, columns_of, value_of
from gitexp.core.render import json_safe
from gitexp.dvc.data import data_json
from gitexp.errors import UsageError
from gitexp.store.environment import differences
from gitexp.store.git import Repo
from gitexp.store.listing import diff_structure, entry_from_state
from gitexp.store.snapshot import read_states, resolve_target
from gitexp.ui.details import code_diff
from gitexp.ui.histories import HistoryCache, Series, downsample
from gitexp.ui.runs import Row, RunTable, experiment_of, live_histories, live_name

MAX_RUNS = 5000
POINT_BUDGET = 400_000  # points per metric chart, shared by its series


def _column_json(col: Column, entries: Sequence[Entry]) -> dict[str, Any]:
    shown = {repr(value_of(e, col)) for e in entries}
    return {"label": col.label, "path": col.path, "key": col.key, "varying": len(shown) > 1}


def compare(
    repo: Repo, table: RunTable, cache: HistoryCache, names: Sequence[str]
) -> dict[str, Any]:
    """The selection's values and histories; names that are neither runs nor revisions are
    listed under `unknown` instead of failing the whole page."""
    names = list(dict.fromkeys(names))
    if len(names) > MAX_RUNS:
        raise UsageError(f"compare at most {MAX_RUNS} runs at once (got {len(names)})")
    known = {r.entry.name: r for r in table.rows()}
    rows: list[Row] = []
    revisions, unknown = [], []
    for name in names:
        if name in known:
            rows.append(known[name])
        else:
            try:
                revisions.append(resolve_target(repo, name))
            except UsageError:
                unknown.append(name)
    with repo.batch_reader() as reader:
        for state in read_states(repo, revisions, reader):
            entry = entry_from_state(state)
            rows.append(Row(entry=entry, kind="revision", experiment=""))
        revs = [r.entry.rev for r in rows if r.kind != "live"]
        found = cache.histories(reader, revs)
    live = {live_name(r): r for r in table.live_runs()}
    histories: dict[str, dict[str, Series]] = {}
    for row in rows:
        if row.kind == "live" and row.entry.name in live:
            histories[row.entry.name] = live_histories(live[row.entry.name], cache.dirs)
        else:
            histories[row.entry.name] = found.get(row.entry.rev, {})
    entries = [r.entry for r in rows]
    columns = columns_of(entries)
    params = [c for c in columns if c.kind == "params"]
    metrics = [c for c in columns if c.kind == "metrics"]
    per_series = max(100, min(2000, POINT_BUDGET // max(1, len(rows))))
    charts: dict[str, dict[str, Any]] = {}
    for name, series in histories.items():
        for metric, values in series.items():
            charts.setdefault(metric, {})[name] = downsample(values, per_series).as_json()
    return json_safe(  # type: ignore[no-any-return]
        {
            "runs": [
                {
                    "name": r.entry.name,
                    "kind": r.kind,
                    "rev": r.entry.rev,
                    "status": r.entry.status,
                    "created": r.entry.created,
                    "experiment": r.experiment or experiment_of(r.entry.name),
                    "tags": r.entry.tags,
                    "params": [value_of(r.entry, c) for c in params],
                    "metrics": [value_of(r.entry, c) for c in metrics],
                }
                for r in rows
            ],
            "params": [_column_json(c, entries) for c in params],
            "metrics": [_column_json(c, entries) for c in metrics],
            "histories": dict(sorted(charts.items())),
            "unknown": unknown,
        }
    )


def diff_page(repo: Repo, a: str, b: str) -> dict[str, Any]:
    """Two runs or revisions: what `gitexp diff` and `diff --env` say, and their code."""
    warnings: list[str] = []
    changes, data_changes = diff_structure(repo, a, b, False, warnings.append)
    targets = [resolve_target(repo, a), resolve_target(repo, b)]
    with repo.batch_reader() as reader:
        states = read_states(repo, targets, reader)
    records = [s.record for s in states]
    environment = []
    if all(records):
        environment = [
            {"what": what, "old": old, "new": new}
            for what, old, new in differences(records[0] or {}, records[1] or {})
        ]
    assert targets[0].rev and targets[1].rev
    return json_safe(  # type: ignore[no-any-return]
        {
            "a": {"name": a, "rev": targets[0].rev},
            "b": {"name": b, "rev": targets[1].rev},
            "changes": [
                {
                    "kind": c.kind,
                    "path": c.path,
                    "key": c.key,
                    "old": c.old if c.in_old else None,
                    "new": c.new if c.in_new else None,
                    "change": c.diff,
                    "relative": c.relative,
                }
                for c in changes
            ],
            "data": data_json(data_changes),
            "environment": environment,
            "code": code_diff(repo, targets[0].rev, targets[1].rev),
            "warnings": warnings,
        }
    )
