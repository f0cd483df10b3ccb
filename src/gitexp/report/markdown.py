"""The report as markdown for a pull-request comment (GitHub, GitLab): Mermaid charts, tables
escaped cell by cell, and a size that stays under the comment limit by giving up detail in
order (finer charts, then charts, then table rows, then whole sections), always between
sections and never inside a block, with a note of what was left out."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gitexp.core.metrics import is_number
from gitexp.core.render import escape_markdown, format_value
from gitexp.report.ci import MARKER
from gitexp.report.figures import Figure, colours, figures, sweep_chart
from gitexp.report.gather import ReportData, metric_of
from gitexp.report.mermaid import MAX_POINTS, mermaid_bars, mermaid_chart
from gitexp.report.summary import (
    budget_rows,
    metric_rows,
    param_rows,
    reproduce_lines,
    run_rows,
    verdict,
)

MAX_MARKDOWN = 60_000  # GitHub's comment limit is 65,536 characters
MARKUP = re.compile(r"([`*_~\[\]()!#])")  # backslash, | and < are escape_markdown's
ICONS = {"pass": "✅", "fail": "❌", "better": "✅", "worse": "❌", "same": "➖", "info": "💡"}


def cell(value: Any) -> str:
    """A table cell that renders as the text it holds: no markup, links, images, mentions,
    issue references or HTML (rows X3, X4)."""
    text = value if isinstance(value, str) else format_value(value)
    text = escape_markdown(text)  # |, newlines, <, >, &, @
    text = MARKUP.sub(r"\\\1", text)
    # GitHub links `#123`, `GH-1` and bare URLs even when escaped: break them with a
    # zero-width space, as escape_markdown does for @mentions.
    text = re.sub(r"(#|://|www\.)", lambda m: m.group(1) + "\u200b", text)
    return text


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], limit: int | None = None) -> str:
    shown = rows if limit is None else rows[:limit]
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |"]
    lines.append("|" + "|".join("---" for _ in headers) + "|")
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in shown]
    if limit is not None and len(rows) > limit:
        lines.append(f"\n… {len(rows) - limit} more rows left out to fit the comment limit")
    return "\n".join(lines)


@dataclass(frozen=True)
class Detail:
    """How much the markdown holds; lowered step by step until it fits."""

    points: int = MAX_POINTS
    charts: int | None = None  # how many charts to keep (None: all)
    rows: int | None = None  # rows per table (None: all)
    sections: int | None = None  # how many sections to keep (None: all)


def _steps(chart_count: int) -> list[Detail]:
    steps = [Detail(), Detail(points=30), Detail(points=15)]
    steps += [Detail(points=15, charts=n) for n in range(chart_count - 1, -1, -1)]
    steps += [Detail(points=15, charts=0, rows=n) for n in (100, 50, 20, 10, 5, 1)]
    steps += [Detail(points=15, charts=0, rows=1, sections=n) for n in range(8, 0, -1)]
    return steps


def build_markdown(report: ReportData, limit: int = MAX_MARKDOWN) -> str:
    palette = colours(report)
    figs = figures(report, palette)
    sweep = sweep_chart(report, palette)
    chart_count = len(figs) + (1 if sweep else 0)
    text = ""
    for detail in _steps(chart_count):
        text = _assemble(report, figs, sweep, detail)
        if len(text) <= limit:
            return text
    return text[: text.rfind("\n\n", 0, limit - 200)] + "\n\n… cut to fit the comment limit\n"


def _assemble(report: ReportData, figs: list[Figure], sweep: Any, detail: Detail) -> str:
    left_out: list[str] = []
    parts = [MARKER, f"## gitexp report: {cell(report.title)}"]
    points = verdict(report)
    if points:
        parts.append(
            " · ".join(
                f"{ICONS[p.status]} **{cell(p.text)}**" + (f": `{p.command}`" if p.command else "")
                for p in points
            )
        )
    sections = _sections(report, figs, sweep, detail, left_out)
    keep = sections if detail.sections is None else sections[: detail.sections]
    if detail.sections is not None and len(sections) > len(keep):
        left_out.append("sections " + ", ".join(h for h, _ in sections[len(keep) :]))
    parts += [f"### {heading}\n\n{body}" for heading, body in keep]
    if report.notes:
        notes = report.notes if detail.rows is None else report.notes[: detail.rows]
        parts.append("### Notes\n\n" + "\n".join(f"- {cell(n)}" for n in notes))
    if left_out:
        parts.append(
            "_Left out to fit the comment limit (the HTML report, `gitexp report --format "
            "html`, has everything): " + "; ".join(cell(x) for x in left_out) + "._"
        )
    return "\n\n".join(parts) + "\n"


def _sections(
    report: ReportData, figs: list[Figure], sweep: Any, detail: Detail, left_out: list[str]
) -> list[tuple[str, str]]:
    rows = detail.rows
    out: list[tuple[str, str]] = []
    metrics = metric_rows(report)
    out.append(
        (
            "Metrics",
            table(["metric", "base", "head", "change", "change %", ""], metrics, rows)
            if metrics
            else "No metrics on either side.",
        )
    )
    if report.checks:
        out.append(
            (
                "Budgets",
                table(["budget", "result", "values", "margin"], budget_rows(report), rows),
            )
        )
    params = param_rows(report)
    out.append(
        (
            "Params that changed",
            table(["file", "param", "base", "head"], params, rows)
            if params
            else "No params changed.",
        )
    )
    if report.data_changes:
        data_rows = [
            [
                d.path,
                d.old.hash[:12] if d.old else None,
                d.new.hash[:12] if d.new else None,
                d.old.size if d.old else None,
                d.new.size if d.new else None,
            ]
            for d in report.data_changes
        ]
        out.append(
            (
                "Data that changed",
                table(["path", "base", "head", "base size", "head size"], data_rows, rows),
            )
        )
    if report.runs:
        headers, run_table = run_rows(report)
        title = (
            f"Runs on this branch, by {report.metric}" if report.metric else "Runs on this branch"
        )
        out.append((cell(title), table(headers, run_table, rows)))
    else:
        out.append(("Runs on this branch", "No runs were recorded on this branch."))
    budget = None if detail.charts is None else detail.charts
    drawn: list[str] = []
    all_charts = [("figure", f) for f in figs] + ([("sweep", sweep)] if sweep else [])
    for index, (kind, item) in enumerate(all_charts):
        title = item.title
        if budget is not None and index >= budget:
            left_out.append(f"chart {title}")
            continue
        body = _sweep(report, item, detail) if kind == "sweep" else _figure(item, detail)
        if body:
            drawn.append(body)
    if not all_charts and not report.sweep:
        bars = _bars(report)
        if bars:
            drawn.append(bars)
    out.append(
        (
            "Plots",
            "\n\n".join(drawn)
            if drawn
            else (
                "No plots: no per-step files under dvclive/plots/ or history/, and no plots "
                "in dvc.yaml."
                if not all_charts
                else "All charts were left out to fit the comment limit."
            ),
        )
    )
    lines = reproduce_lines(report)
    out.append(
        (
            "How to reproduce",
            "```sh\n" + "\n".join(lines) + "\n```"
            if lines
            else "No run to reproduce: record one with `gitexp run -- COMMAND`.",
        )
    )
    return out


def _legend(drawn: Any) -> str:
    text = cell(drawn.legend)
    if drawn.notes:
        text += "  \n" + "  \n".join(f"_{cell(n)}_" for n in drawn.notes)
    return text


def _figure(figure: Figure, detail: Detail) -> str | None:
    if figure.kind == "chart" and figure.chart is not None:
        drawn = mermaid_chart(figure.chart, detail.points)
        if drawn is None:
            notes = " ".join(cell(n) for n in figure.chart.notes) or "no finite values"
            return f"**{cell(figure.title)}**: nothing to draw ({notes})."
        return f"{drawn.block}\n\n{_legend(drawn)}"
    assert figure.view is not None
    if figure.kind == "image":
        sides = ", ".join(figure.view.data)
        return (
            f"**{cell(figure.title)}**: an image ({cell(sides)}); the HTML report shows it "
            "(a comment cannot hold images without hosting them)."
        )
    blocks = []
    sides: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for side, data in figure.view.data.items():
        if data.pairs:
            sides.setdefault(tuple(data.pairs), []).append(side)  # equal ones shown once
    for pairs, names in sides.items():
        side = " = ".join(names)
        classes = sorted({c for pair in pairs for c in pair})[:20]
        counts: dict[tuple[str, str], int] = {}
        for pair in pairs:
            counts[pair] = counts.get(pair, 0) + 1
        rows = [[a, *(counts.get((a, p), 0) for p in classes)] for a in classes]
        blocks.append(
            f"**{cell(figure.title)}, {cell(side)}** (rows: actual, columns: predicted)\n\n"
            + table(["actual ↓ predicted →", *classes], rows)
        )
    return "\n\n".join(blocks) or None


def _sweep(report: ReportData, chart: Any, detail: Detail) -> str | None:
    drawn = mermaid_chart(chart, detail.points)
    if drawn is None:
        return None
    capped = len(report.runs) - len(report.sweep)
    note = f" (the best {len(report.sweep)}; {capped} more runs not drawn)" if capped > 0 else ""
    return f"**{cell(chart.title)}**{note}\n\n{drawn.block}\n\n{_legend(drawn)}"


def _bars(report: ReportData) -> str | None:
    """Without histories, the main metric of each run as a bar."""
    key = report.metric
    if not key or len(report.runs) < 2:
        return None
    runs = [r for r in report.runs if is_number(metric_of(r, key))][:20]
    return mermaid_bars(key, [r.name for r in runs], [float(metric_of(r, key)) for r in runs])
