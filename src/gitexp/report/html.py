"""The report as one self-contained HTML page: a pass/fail banner, summary cards, tables,
SVG charts (histories, the sweep, param-vs-metric scatter plots, parallel coordinates,
confusion matrices) and images embedded as data URIs. No scripts, fonts or requests; dark
mode follows the system; the layout follows the window's width."""

from __future__ import annotations

import base64
import posixpath
from collections.abc import Sequence
from html import escape
from typing import Any

from gitexp.core.charts import Chart, Colours, Series
from gitexp.core.metrics import is_number
from gitexp.core.render import format_value
from gitexp.report.figures import Figure, colours, figures, sweep_chart
from gitexp.report.gather import ReportData, flat, metric_of
from gitexp.report.plots import IMAGE_SUFFIXES
from gitexp.report.summary import (
    budget_rows,
    metric_rows,
    param_rows,
    reproduce_lines,
    run_rows,
    varying_params,
    verdict,
)
from gitexp.report.svg import confusion_matrix, line_chart, parallel_coordinates

STYLE = """
:root{color-scheme:light dark;--fg:#1f2328;--muted:#656d76;--bg:#fff;--card:#f6f8fa;
--line:#d0d7de;--grid:#eaeef2;--pass:#1a7f37;--fail:#cf222e;--info:#0969da}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9198a1;--bg:#0d1117;
--card:#161b22;--line:#30363d;--grid:#21262d;--pass:#3fb950;--fail:#f85149;--info:#58a6ff}}
*{box-sizing:border-box}
body{font:14px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);
background:var(--bg);max-width:1100px;margin:0 auto;padding:1.5em}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;margin-top:1.6em;
border-bottom:1px solid var(--line);padding-bottom:.3em}
.banner{padding:.8em 1em;border-radius:8px;font-weight:600;color:#fff;margin:1em 0}
.banner.pass{background:var(--pass)}.banner.fail{background:var(--fail)}
.banner.info{background:var(--info)}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(190px,1fr));gap:.8em}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:.7em 1em}
.card .k{color:var(--muted);font-size:.85em}.card .v{font-size:1.35em;font-weight:600}
.better{color:var(--pass)}.worse{color:var(--fail)}
.scroll{overflow-x:auto}
table{border-collapse:collapse;margin:.6em 0;font-variant-numeric:tabular-nums}
td,th{border:1px solid var(--line);padding:4px 9px;text-align:left;white-space:nowrap}
th{background:var(--card)}
pre{background:var(--card);padding:1em;border-radius:6px;overflow-x:auto}
figure{margin:1em 0}svg.chart{width:100%;height:auto;max-width:900px;display:block}
svg .grid{stroke:var(--grid)}svg .axis{stroke:var(--muted)}
svg .title{font-size:14px;font-weight:600}svg text.on-dark{fill:#fff}
.legend{list-style:none;padding:0;margin:.3em 0;display:flex;flex-wrap:wrap;gap:.3em 1.2em}
.legend .swatch{display:inline-block;width:12px;height:12px;border-radius:2px;
margin-right:.4em;vertical-align:-1px}.legend .note{color:var(--muted);flex-basis:100%}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:1em}
img.plot{max-width:100%;border:1px solid var(--line)}
.muted{color:var(--muted)}
"""


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def text(value: Any) -> str:
        return escape(value if isinstance(value, str) else format_value(value))

    head = "".join(f"<th>{text(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{_marked(text(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'


def _marked(text: str) -> str:
    if text.startswith("✅"):
        return f'<span class="better">{text}</span>'
    if text.startswith("❌"):
        return f'<span class="worse">{text}</span>'
    return text


def build_html(report: ReportData) -> str:
    palette = colours(report)
    body = [f"<h1>gitexp report: {escape(report.title)}</h1>"]
    body.append(_banner(report))
    body.append(_cards(report))
    metrics = metric_rows(report)
    body.append("<h2>Metrics</h2>")
    body.append(
        table(["metric", "base", "head", "change", "change %", ""], metrics)
        if metrics
        else "<p>No metrics on either side.</p>"
    )
    if report.checks:
        body.append("<h2>Budgets</h2>")
        body.append(table(["budget", "result", "values", "margin"], budget_rows(report)))
    params = param_rows(report)
    body.append("<h2>Params that changed</h2>")
    body.append(
        table(["file", "param", "base", "head"], params) if params else "<p>No params changed.</p>"
    )
    if report.data_changes:
        rows = [
            [d.path, d.old.hash[:12] if d.old else None, d.new.hash[:12] if d.new else None,
             d.old.size if d.old else None, d.new.size if d.new else None]
            for d in report.data_changes
        ]  # fmt: skip
        body.append("<h2>Data that changed</h2>")
        body.append(table(["path", "base", "head", "base size", "head size"], rows))
    heading = f"Runs on this branch, by {report.metric}" if report.metric else "Runs on this branch"
    body.append(f"<h2>{escape(heading)}</h2>")
    if report.runs:
        headers, rows = run_rows(report)
        body.append(table(headers, rows))
        body.append(_sweep_views(report, palette))
    else:
        body.append("<p>No runs were recorded on this branch.</p>")
    body.append("<h2>Plots</h2>")
    figs = figures(report, palette)
    body.append(
        "".join(_figure(f) for f in figs)
        or "<p>No plots: no per-step files under dvclive/plots/ or history/, and no plots in "
        "dvc.yaml.</p>"
    )
    lines = reproduce_lines(report)
    body.append("<h2>How to reproduce</h2>")
    body.append(
        f"<pre>{escape(chr(10).join(lines))}</pre>"
        if lines
        else "<p>No run to reproduce: record one with <code>gitexp run -- COMMAND</code>.</p>"
    )
    if report.notes:
        body.append(
            "<h2>Notes</h2><ul>" + "".join(f"<li>{escape(n)}</li>" for n in report.notes) + "</ul>"
        )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>gitexp report: {escape(report.title)}</title><style>{STYLE}</style></head>"
        "<body>" + "".join(body) + "</body></html>\n"
    )


def _banner(report: ReportData) -> str:
    points = verdict(report)
    if not points:
        return ""
    status = "fail" if report.failed else ("pass" if report.checks else "info")
    if not report.checks and any(p.status == "worse" for p in points):
        status = "fail"
    text = " · ".join(
        escape(p.text) + (f": <code>{escape(p.command)}</code>" if p.command else "")
        for p in points
    )
    icon = {"pass": "✅", "fail": "❌", "info": "ℹ️"}[status]
    return f'<div class="banner {status}" role="status">{icon} {text}</div>'


def _cards(report: ReportData) -> str:
    cards = []
    key = report.metric
    if key:
        old, new = metric_of(report.base, key), metric_of(report.head, key)
        rows = {r[0]: r for r in metric_rows(report)}
        mark = rows.get(key.rsplit(":", 1)[-1], [None] * 6)[5] or ""
        css = "better" if "better" in mark else ("worse" if "worse" in mark else "")
        change = rows.get(key.rsplit(":", 1)[-1], [None] * 6)[4] or ""
        cards.append(_card(f"{key}, head", format_value(new), f"{change} vs base", css))
        cards.append(_card(f"{key}, base", format_value(old), report.base_label, ""))
        if report.best is not None:
            cards.append(
                _card(
                    "best run",
                    report.best.name,
                    f"{key} {format_value(metric_of(report.best, key))}",
                    "",
                )
            )
    if report.checks:
        passed = sum(c.passed for c in report.checks)
        css = "better" if passed == len(report.checks) else "worse"
        cards.append(_card("budgets met", f"{passed} of {len(report.checks)}", "", css))
    cards.append(_card("runs on this branch", str(len(report.runs)), "", ""))
    return '<div class="cards">' + "".join(cards) + "</div>"


def _card(title: str, value: str, detail: str, css: str) -> str:
    return (
        f'<div class="card"><div class="k">{escape(title)}</div>'
        f'<div class="v {css}">{escape(value)}</div>'
        f'<div class="k">{escape(detail)}</div></div>'
    )


def _figure(figure: Figure) -> str:
    if figure.kind == "chart" and figure.chart is not None:
        return line_chart(figure.chart)
    assert figure.view is not None
    parts = []
    for side, data in figure.view.data.items():
        if figure.kind == "confusion" and data.pairs:
            actual, predicted = zip(*data.pairs, strict=True)
            parts.append(confusion_matrix(f"{figure.title}, {side}", actual, predicted))
        for path, blob in data.images.items():
            mime = IMAGE_SUFFIXES.get(posixpath.splitext(path)[1].lower(), "image/png")
            uri = f"data:{mime};base64,{base64.b64encode(blob).decode()}"
            parts.append(
                f'<figure><img class="plot" alt="{escape(path)}" src="{uri}">'
                f"<figcaption>{escape(path)}, {escape(side)}</figcaption></figure>"
            )
    return f'<div class="grid2">{"".join(parts)}</div>' if parts else ""


def _sweep_views(report: ReportData, palette: Colours) -> str:
    """The sweep: the main metric's history per run, each varying param against the metric,
    and all of them at once as parallel coordinates."""
    key = report.metric
    parts = []
    sweep = sweep_chart(report, palette)
    if sweep is not None:
        parts.append(line_chart(sweep))
    if not key or len(report.runs) < 2:
        return "".join(parts)
    params = sorted(varying_params(report))
    scored = [r for r in report.runs if is_number(metric_of(r, key))]
    scatters = []
    for param in params[:6]:
        points = [(flat(r.params).get(param), metric_of(r, key), r) for r in scored]
        numeric = [(x, y, r) for x, y, r in points if is_number(x)]
        if len(numeric) < 2:
            continue
        series = tuple(
            palette.paint(Series.of(r.name, [float(y)], [float(x)])) for x, y, r in numeric
        )
        scatters.append(line_chart(Chart(f"{key} by {param}", series, x_label=param,
                                         y_label=key, points=True)))  # fmt: skip
    if scatters:
        parts.append(f'<div class="grid2">{"".join(scatters)}</div>')
    if params:
        axes = [*params[:8], key]
        rows = [(r.name, [*(flat(r.params).get(p) for p in params[:8]), metric_of(r, key)])
                for r in scored[:40]]  # fmt: skip
        parts.append(
            parallel_coordinates(
                f"{key} across the params that vary",
                axes,
                rows,
                [palette.of(r.name)[0] for r in scored[:40]],
            )  # fmt: skip
        )
    return "".join(parts)
