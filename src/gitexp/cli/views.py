"""The data and text of `show`, `diff` and `log`: reading (one batch process per command),
the pure computations of compare.py, then render.py."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from gitexp.core.compare import (
    Column,
    Entry,
    carried_of,
    diff_json,
    select,
    value_of,
    visible_columns,
)
from gitexp.core.metrics import delta
from gitexp.core.render import Carried, format_value, render_rows, to_json
from gitexp.dvc.data import DataChange, data_json
from gitexp.errors import UsageError
from gitexp.store.git import Repo
from gitexp.store.listing import diff_structure, entry_json, run_entries
from gitexp.store.records import read_environment, read_run_log
from gitexp.store.snapshot import resolve_target


def short_time(iso: str | None) -> str | None:
    """'2026-11-24T14:09:37.215+00:00' as '2026-11-24 14:09:37' in this machine's time zone."""
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso


def _cell(entry: Entry, column: Column) -> Any:
    value = value_of(entry, column)
    if value is None and (carried := carried_of(entry, column)) is not None:
        return Carried(carried)
    return value


def show_output(
    entries: Sequence[Entry],
    *,
    fmt: str,
    precision: int,
    filter_expr: str | None,
    sort_by: str | None,
    descending: bool,
    limit: int | None,
    only_changed: bool,
    keep: Sequence[str] = (),
    drop: Sequence[str] = (),
    kinds: Sequence[str] = ("params", "metrics"),
) -> str:
    chosen = select(
        entries, filter_expr=filter_expr, sort_by=sort_by, descending=descending, limit=limit
    )
    if fmt == "json":
        return to_json([entry_json(e) for e in chosen])
    if not chosen and fmt == "table":
        return "no runs" + (
            " match the filter" if filter_expr else ": record one with 'gitexp run'"
        )
    columns = visible_columns(chosen, only_changed, keep, drop, kinds)
    # tags and messages, when any run has one (a note added later wins over -m); with
    # --only-changed, only when they differ between the runs, as for params and metrics
    same = only_changed and len(chosen) > 1
    extra = []
    if any(e.tags for e in chosen) and not (same and all(e.tags == chosen[0].tags for e in chosen)):
        extra.append("tags")
    messages = [e.note or e.message for e in chosen]
    if any(messages) and not (same and len(set(messages)) == 1):
        extra.append("message")
    fixed_headers = ["run", "rev", "base", "created", "status", "duration", *extra]
    headers = fixed_headers + [c.label for c in columns]
    short = fmt == "table" or fmt == "md"
    rows = []
    for e in chosen:
        fixed = [
            f"{e.name} (dvc)" if e.dvc_experiment and fmt != "csv" else e.name,
            e.rev[:7] if short and e.rev != "workspace" else e.rev,
            (e.base[:7] if short else e.base) if e.base else None,
            short_time(e.created) if short else e.created,
            e.status,
            e.duration,
        ]
        if "tags" in extra:
            fixed.append(", ".join(f"{k}={v}" for k, v in e.tags.items()) or None)
        if "message" in extra:
            fixed.append(e.note or e.message)
        rows.append(fixed + [_cell(e, c) for c in columns])
    return render_rows(headers, rows, fmt, precision)


def diff_output(
    repo: Repo,
    a: str,
    b: str,
    show_all: bool,
    fmt: str,
    precision: int,
    warn: Callable[[str], None],
) -> str:
    changes, data_changes = diff_structure(repo, a, b, show_all, warn)
    if fmt == "json":
        return to_json({**diff_json(changes), "data": data_json(data_changes)})
    if not changes and not data_changes and fmt == "table":
        return f"no differences in params, metrics or data between {a} and {b}"
    headers = ["path", "key", a, b, "change", "change %"]
    rows = []
    for c in changes:
        rel = c.relative
        rows.append(
            [
                c.path,
                c.key,
                c.old if c.in_old else None,
                c.new if c.in_new else None,
                c.diff,
                None if rel is None else f"{rel * 100:+.2f}%",
            ]
        )
    parts = [render_rows(headers, rows, fmt, precision)] if rows else []
    if data_changes:
        parts.append(_data_table(data_changes, fmt, precision))
    return "\n\n".join(parts)


def _data_table(changes: Sequence[DataChange], fmt: str, precision: int) -> str:
    rows = []
    for c in changes:
        files = None
        if c.added is not None:
            files = f"+{c.added} -{c.removed} ~{c.modified}"
        rows.append(
            [
                c.path,
                c.old.hash[:12] if c.old and fmt != "csv" else (c.old.hash if c.old else None),
                c.new.hash[:12] if c.new and fmt != "csv" else (c.new.hash if c.new else None),
                c.old.size if c.old else None,
                c.new.size if c.new else None,
                files,
            ]
        )
    headers = ["data", "old hash", "new hash", "old size", "new size", "files"]  # as DVC says
    return render_rows(headers, rows, fmt, precision)


LOG_FIELDS = (
    "name", "status", "exit_code", "command", "started", "ended", "duration", "base", "branch",
    "author", "host", "python", "platform", "overrides", "tags", "message",
)  # fmt: skip


def log_output(repo: Repo, name: str, fmt: str, precision: int) -> str:
    target = resolve_target(repo, name)
    with repo.batch_reader() as reader:
        record, log = read_run_log(repo, target.rev or "", reader)
    if target.rev is None or record is None:
        raise UsageError(f"'{name}' is not a run: see 'gitexp show' for the runs there are")
    if fmt == "json":
        return to_json({**record, "rev": target.rev, "log": log.decode("utf-8", "replace")}) + "\n"
    fields = LOG_FIELDS
    rows = [[f, record.get(f)] for f in fields if record.get(f) not in (None, [], {}, "")]
    rows.insert(1, ["rev", target.rev])
    for kind in ("params", "metrics"):
        for path, flat in (record.get(kind) or {}).items():
            rows += [[f"{path}:{key}", value] for key, value in flat.items()]
    if fmt != "table":
        return render_rows(["field", "value"], rows, fmt, precision) + "\n"
    width = max(len(r[0]) for r in rows)
    lines = [
        f"{field:<{width}}  "
        + (" ".join(value) if field == "command" else format_value(value, precision))
        for field, value in rows
    ]
    text = "\n".join(lines) + "\n"
    if log:
        text += "\n--- output ---\n" + log.decode("utf-8", "replace")
        if not text.endswith("\n"):
            text += "\n"
    return text


def reproduce_output(result: Any, fmt: str, precision: int) -> str:
    """Old and new metrics side by side, the environment differences, and the verdict; for a
    re-run whose command failed, its exit code and the end of its log instead."""
    rows = [
        [c.path, c.key, c.old, c.new, delta(c.old, c.new), "ok" if c.matches else "differs"]
        for c in result.checks
    ]
    verdict = "reproduced" if result.reproduced else ("failed" if result.failed else "differs")
    outcome = result.outcome
    if fmt == "json":
        return to_json(
            {
                "verdict": verdict,
                "original": result.original,
                "run": outcome.name,
                "status": outcome.status,
                "exit_code": outcome.exit_code,
                "log_tail": result.log_tail or None,
                "metrics": [
                    dict(zip(["path", "key", "old", "new", "diff", "result"], r, strict=True))
                    for r in rows
                ],  # fmt: skip
                "environment": [
                    {"what": w, "recorded": a, "now": b} for w, a, b in result.environment
                ],
                "worktree": str(result.worktree) if result.worktree else None,
            }
        )
    if result.failed:
        parts = [
            f"the re-run {outcome.status} (exit code {outcome.exit_code}), so its metrics are "
            "not compared; the end of its output:\n" + (result.log_tail or "(no output)")
        ]
    else:
        headers = ["path", "metric", result.original, outcome.name, "change", "result"]
        parts = [render_rows(headers, rows, fmt, precision)] if rows else ["no metrics to compare"]
    if result.environment and not result.reproduced:
        env_rows = [[w, a, b] for w, a, b in result.environment]
        parts.append(render_rows(["environment", "recorded", "now"], env_rows, fmt, precision))
    if result.worktree:
        parts.append(f"worktree kept at {result.worktree}")
    if result.failed:
        parts.append(
            f"failed: {outcome.name} re-ran {result.original} and exited {outcome.exit_code}"
        )
    else:
        parts.append(f"{verdict}: {outcome.name} re-ran {result.original}")
    return "\n\n".join(parts)


def report_output(
    repo: Repo,
    base: str | None,
    head: str,
    fmt: str,
    metric: str | None,
    checks: Sequence[str],
) -> tuple[str, bool]:
    """The report's text and whether a budget failed."""
    from gitexp.report.gather import gather
    from gitexp.report.html import build_html
    from gitexp.report.markdown import build_markdown

    with repo.batch_reader() as reader:
        runs = run_entries(repo, reader)
    data = gather(repo, base, head, metric, checks, runs)
    text = build_html(data) if fmt == "html" else build_markdown(data)
    return text, data.failed


def history_output(repo: Repo, spec: str, fmt: str, metric: str | None) -> str:
    """A metric over the commits of a range, from the runs recorded on them."""
    from gitexp.report.history import commit_points, history_html, history_keys, history_markdown

    points = commit_points(repo, spec, metric)
    if not points:
        raise UsageError(f"no commits in '{spec}'")
    keys = history_keys(points, metric)
    if fmt == "html":
        return history_html(spec, points, keys)
    return history_markdown(spec, points, keys)


def bisect_output(result: Any, fmt: str, precision: int) -> str:
    """The commits bisect judged, oldest first, and the first bad one."""
    rows = [
        [p.sha[:10] if fmt != "json" else p.sha, p.subject, p.value, p.verdict, p.source]
        for p in result.probes
    ]
    headers = ["commit", "subject", result.metric, "verdict", "from"]
    first = result.first_bad
    if fmt == "json":
        return to_json(
            {
                "metric": result.metric,
                "goal": result.goal,
                "threshold": result.threshold,
                "first_bad": first.sha if first else None,
                "candidates": [sha for sha, _ in result.candidates],
                "commits": [dict(zip(headers, row, strict=True)) for row in rows],
                "reran": result.reran,
            }
        )
    text = render_rows(headers, rows, fmt, precision)
    if fmt == "csv":
        return text
    better = "higher" if result.goal == "max" else "lower"
    judged = sum(1 for p in result.probes if p.verdict != "skip")
    summary = (
        f"{judged} of {result.tested + 2} commits judged ({result.reran} run now), "
        f"{better} is better, bad past {format_value(result.threshold)}"
    )
    if first is not None:
        verdict = (
            f"first bad commit: {first.sha[:10]} {first.subject} "
            f"({result.metric} {format_value(first.value)})"
        )
    else:
        listed = ", ".join(f"{sha[:10]} {subject}" for sha, subject in result.candidates)
        verdict = f"the first bad commit is one of these (the others could not be judged): {listed}"
    return f"{text}\n\n{summary}\n{verdict}"


def env_diff_output(repo: Repo, a: str, b: str, fmt: str, precision: int) -> str:
    """What differs between the environments two runs recorded."""
    from gitexp.store.environment import differences

    records = []
    with repo.batch_reader() as reader:
        for spec in (a, b):
            target = resolve_target(repo, spec)
            record, _ = read_run_log(repo, target.rev or "", reader)
            if target.rev is None or record is None:
                raise UsageError(f"'{spec}' is not a run: --env compares two runs")
            records.append(read_environment(reader, target.rev, record))
    rows = [[what, old, new] for what, old, new in differences(records[0], records[1])]
    if fmt == "json":
        return to_json({what: {"old": old, "new": new} for what, old, new in rows})
    if not rows and fmt == "table":
        return f"no differences in environment between {a} and {b}"
    return render_rows(["environment", a, b], rows, fmt, precision)
