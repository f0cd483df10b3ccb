"""The charts of a report, as data both writers draw (Mermaid for markdown, SVG for HTML):
one chart per plotted field with a line per side, the sweep of the branch's runs, and what
drawing them cannot show (confusion matrices and images are drawn by each writer)."""

from __future__ import annotations

from dataclasses import dataclass

from gitexp.core.charts import Chart, Colours, Series
from gitexp.report.gather import PlotView, ReportData, metric_keys
from gitexp.report.plots import CONFUSION


@dataclass(frozen=True)
class Figure:
    """A chart of one plotted field, or a confusion matrix or images of one plot."""

    title: str
    kind: str  # 'chart', 'confusion' or 'image'
    chart: Chart | None = None
    view: PlotView | None = None


def colours(report: ReportData) -> Colours:
    """Base, head and best first, so they keep the same colour in every chart."""
    return Colours([s.key for s in report.sides] + [r.name for r in report.runs])


def figures(report: ReportData, palette: Colours | None = None) -> list[Figure]:
    """Charts in the order of the metrics table, then the other plots in declared order."""
    palette = palette or colours(report)
    keys = {s.label: s.key for s in report.sides}
    order = metric_keys([report.head.metrics, report.base.metrics])
    charts: list[tuple[int, int, Figure]] = []
    for number, view in enumerate(report.plots):
        d = view.definition
        if d.template in CONFUSION or d.template == "image":
            kind = "image" if d.template == "image" else "confusion"
            charts.append((len(order), number, Figure(d.title or d.id, kind, view=view)))
            continue
        names = list(dict.fromkeys(c.name for data in view.data.values() for c in data.curves))
        for name in names:
            series = []
            x_field = "step"
            for side, data in view.data.items():
                for curve in data.curves:
                    if curve.name == name:
                        x_field = curve.x_field
                        line = Series.of(side, curve.ys, curve.xs)
                        series.append(palette.paint(line, keys.get(side)))
            title = name if (d.title is None or len(names) > 1) else d.title
            if d.title and len(names) > 1:
                title = f"{d.title}: {name}"
            chart = Chart(
                title,
                tuple(series),
                x_label=d.x_label or x_field,
                y_label=d.y_label or name,
                points=d.template == "scatter",
            )
            rank = order.index(name) if name in order else len(order)
            charts.append((rank, number, Figure(title, "chart", chart=chart)))
    charts.sort(key=lambda item: (item[0], item[1]))
    return [figure for _, _, figure in charts]


def sweep_chart(report: ReportData, palette: Colours | None = None) -> Chart | None:
    """The main metric's history in each of the branch's runs, best first."""
    if len(report.sweep) < 2 or not report.metric:
        return None
    palette = palette or colours(report)
    series = tuple(
        palette.paint(Series.of(name, ys, xs)) for name, (xs, ys) in report.sweep.items()
    )
    leaf = report.metric.rsplit(":", 1)[-1]
    return Chart(f"{leaf}: the runs of this branch", series, y_label=leaf)
