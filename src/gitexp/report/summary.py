"""What a reviewer decides from: the verdict (budgets, head against base on the main metric,
the best run against head), and the rows of the tables, shared by markdown and HTML."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gitexp.core.compare import diff_sections
from gitexp.core.metrics import delta, is_number, relative
from gitexp.core.render import format_value
from gitexp.core.secrets import MASK, secret_param
from gitexp.report.gather import ReportData, direction, flat, metric_of


@dataclass(frozen=True)
class Point:
    """One item of the verdict: 'pass', 'fail', 'better', 'worse', 'same' or 'info'."""

    status: str
    text: str
    command: str | None = None


def judge(key: str, old: Any, new: Any, directions: dict[str, str]) -> str:
    change = delta(old, new)
    goal = direction(key, directions)
    if change is None or change == 0 or goal is None:
        return "same"
    better = change < 0 if goal == "min" else change > 0
    return "better" if better else "worse"


MARKS = {"better": "✅ better", "worse": "❌ worse", "same": "➖"}


def percent(old: Any, new: Any) -> str | None:
    rel = relative(old, new)
    return None if rel is None else f"{rel * 100:+.2f}%"


def verdict(report: ReportData) -> list[Point]:
    points = []
    if report.checks:
        failed = [c for c in report.checks if not c.passed]
        plural = "s" if len(report.checks) > 1 else ""
        if failed:
            points.append(
                Point("fail", f"{len(failed)} of {len(report.checks)} budget{plural} failed")
            )
        else:
            points.append(Point("pass", f"{'all ' if plural else ''}budget{plural} met"))
    key = report.metric
    if key:
        old, new = metric_of(report.base, key), metric_of(report.head, key)
        if new is None:
            points.append(Point("info", f"the head has no {key}"))
        elif old is None:
            points.append(Point("info", f"{key} {format_value(new)} (the base has none)"))
        else:
            status = judge(key, old, new, report.directions)
            change = percent(old, new) or format_value(delta(old, new))
            word = {"better": "better than", "worse": "worse than", "same": "same as"}[status]
            points.append(
                Point(
                    status,
                    f"{key} {format_value(new)} is {word} the base's {format_value(old)} "
                    f"({change})",
                )
            )
        best = report.best
        head_value = metric_of(report.head, key)
        if best is not None and best.rev != report.head.target.rev:
            value = metric_of(best, key)
            if is_number(head_value):
                beats = judge(key, head_value, value, report.directions) == "better"
            else:
                beats = True
            if beats:
                branch = f"try-{best.name.replace('/', '-')}"
                points.append(
                    Point(
                        "info",
                        f"run {best.name} beats the head: {key} {format_value(value)}"
                        + (
                            f" ({percent(head_value, value)})" if percent(head_value, value) else ""
                        ),
                        f"gitexp branch {best.name} {branch}",
                    )
                )
    return points


def metric_rows(report: ReportData) -> list[list[Any]]:
    old = {"params": report.base.params, "metrics": report.base.metrics}
    new = {"params": report.head.params, "metrics": report.head.metrics}
    rows = []
    for c in diff_sections(old, new, show_all=True):
        if c.kind == "metrics":
            status = judge(c.key, c.old, c.new, report.directions)
            rows.append(
                [c.key, c.old, c.new, delta(c.old, c.new), percent(c.old, c.new), MARKS[status]]
            )
    return rows


def param_rows(report: ReportData) -> list[list[Any]]:
    old = {"params": report.base.params, "metrics": report.base.metrics}
    new = {"params": report.head.params, "metrics": report.head.metrics}
    return [
        [c.path, c.key, shown(c.key, c.old), shown(c.key, c.new)]
        for c in diff_sections(old, new)
        if c.kind == "params"
    ]


def shown(key: str, value: Any) -> Any:
    return MASK if secret_param(key) and value is not None else value


def varying_params(report: ReportData) -> list[str]:
    """Params whose values differ across the branch's runs (a sweep's learning rates)."""
    if len(report.runs) < 2:
        return []
    values: dict[str, set[str]] = {}
    for run in report.runs:
        merged = {k: v for k, v in flat(run.params).items() if ":" not in k}
        for key in {k for r in report.runs for k in flat(r.params) if ":" not in k}:
            values.setdefault(key, set()).add(repr(merged.get(key)))
    return [k for k, seen in values.items() if len(seen) > 1 and not secret_param(k)]


def run_rows(report: ReportData) -> tuple[list[str], list[list[Any]]]:
    params = sorted(varying_params(report))
    key = report.metric
    others = [
        k
        for k in dict.fromkeys(k for r in report.runs for f in r.metrics.values() for k in f)
        if k != key
    ][:6]
    base_value = metric_of(report.base, key) if key else None
    headers = ["", "run", "commit", "status", "duration", *params]
    if key:
        headers += [key, "vs base"]
    headers += others
    rows = []
    for index, run in enumerate(report.runs, 1):
        mark = "⭐" if report.best is not None and run.name == report.best.name else f"{index}"
        if run.rev == report.head.target.rev:
            mark += " head"
        values = flat(run.params)
        row: list[Any] = [
            mark,
            run.name,
            run.rev[:7],
            run.status,
            _duration(run.duration),
            *(values.get(p) for p in params),
        ]
        if key:
            value = metric_of(run, key)
            change = percent(base_value, value)
            row += [value, change if change else format_value(delta(base_value, value))]
        row += [metric_of(run, k) for k in others]
        rows.append(row)
    return headers, rows


def _duration(seconds: Any) -> str | None:
    if not is_number(seconds):
        return None
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def budget_rows(report: ReportData) -> list[list[Any]]:
    rows = []
    for c in report.checks:
        values = ", ".join(f"{k} = {format_value(v)}" for k, v in c.values)
        rows.append(
            [
                c.expression,
                "✅ pass" if c.passed else "❌ fail",
                values,
                c.reason or (None if c.margin is None else format_value(c.margin)),
            ]
        )
    return rows


def reproduce_lines(report: ReportData) -> list[str]:
    target = report.best.name if report.best else report.head_run
    if not target:
        return []
    return [
        "gitexp pull                        # fetch the runs and their data",
        f"gitexp checkout {target}   # the workspace as the run was",
        f"gitexp reproduce {target}  # re-run it and compare the metrics",
        f"gitexp branch {target} try-{target.replace('/', '-')}  # a branch for a pull request",
    ]
