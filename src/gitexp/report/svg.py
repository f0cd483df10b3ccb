"""Charts as inline SVG for the HTML report: lines with gaps at NaN, scatter plots, parallel
coordinates and confusion matrices. No scripts: tooltips are SVG `<title>` elements, colours
of text and axes come from the page's CSS (`currentColor`), so dark mode works; the viewBox
makes a chart as wide as the page. Each function returns a `<figure>` with an HTML legend
under the chart, which wraps instead of overlapping.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from html import escape

from gitexp.core.charts import (
    Axis,
    Chart,
    Series,
    downsample,
    merge_identical,
    nan_notes,
    plain,
    value_axis,
    x_axis,
)

WIDTH, HEIGHT = 720, 340
MAX_POINTS = 400  # per series; more are sampled (first, last and NaN edges kept)
CHAR = 6.6  # approximate width of a character at font-size 11


def _legend(series: Sequence[Series], notes: Sequence[str]) -> str:
    items = "".join(
        f'<li><span class="swatch" style="background:{s.colour}"></span>{escape(s.label)}</li>'
        for s in series
    )
    note = "".join(f"<li class=note>{escape(n)}</li>" for n in notes)
    return f'<ul class="legend">{items}{note}</ul>'


class _Frame:
    """Pixel positions of an x and a y axis inside the chart's box, and their drawing."""

    def __init__(
        self, x: Axis, y: Axis, x_title: str, y_title: str, x_names: Sequence[str] = ()
    ) -> None:
        self.x, self.y, self.x_names = x, y, x_names
        widest = max((len(y.label(t)) for t in y.ticks), default=3)
        self.left = 28 + widest * CHAR + 8
        self.right, self.top, self.bottom = 18, 34, 46
        self.x_title, self.y_title = x_title, y_title

    def px(self, value: float) -> float:
        v = self.x.to_axis(value)
        return self.left + (WIDTH - self.left - self.right) * (v - self.x.low) / (
            self.x.high - self.x.low
        )

    def py(self, value: float) -> float:
        v = self.y.to_axis(value)
        return self.top + (HEIGHT - self.top - self.bottom) * (
            1 - (v - self.y.low) / (self.y.high - self.y.low)
        )

    def draw(self, title: str) -> list[str]:
        bottom, right = HEIGHT - self.bottom, WIDTH - self.right
        parts = [
            f'<text class="title" x="{WIDTH / 2}" y="18" text-anchor="middle">'
            f"{escape(title)}</text>"
        ]
        for tick in self.y.ticks:
            y = self._y_axis_px(tick)
            parts.append(
                f'<line class="grid" x1="{self.left:.1f}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}"/>'
                f'<text x="{self.left - 6:.1f}" y="{y + 4:.1f}" text-anchor="end">'
                f"{escape(self.y.label(tick))}</text>"
            )
        for tick in self.x.ticks:
            x = self._x_axis_px(tick)
            parts.append(
                f'<line class="grid" x1="{x:.1f}" y1="{self.top}" x2="{x:.1f}" y2="{bottom}"/>'
                f'<text x="{x:.1f}" y="{bottom + 15}" text-anchor="middle">'
                f"{escape(self._x_label(tick))}</text>"
            )
        parts += [
            f'<line class="axis" x1="{self.left:.1f}" y1="{bottom}" x2="{right}" y2="{bottom}"/>',
            f'<line class="axis" x1="{self.left:.1f}" y1="{self.top}" x2="{self.left:.1f}" '
            f'y2="{bottom}"/>',
            f'<text x="{(self.left + right) / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle">'
            f"{escape(self.x.titled(self.x_title))}</text>",
            f'<text transform="translate(14 {(self.top + bottom) / 2:.1f}) rotate(-90)" '
            f'text-anchor="middle">{escape(self.y.titled(self.y_title))}</text>',
        ]
        return parts

    def _x_label(self, tick: float) -> str:
        if self.x_names and float(tick).is_integer() and 0 <= tick < len(self.x_names):
            return self.x_names[int(tick)]
        return self.x.label(tick)

    def _x_axis_px(self, tick: float) -> float:
        span = WIDTH - self.left - self.right
        return self.left + span * (tick - self.x.low) / (self.x.high - self.x.low)

    def _y_axis_px(self, tick: float) -> float:
        span = HEIGHT - self.top - self.bottom
        return self.top + span * (1 - (tick - self.y.low) / (self.y.high - self.y.low))


def _svg(title: str, parts: Sequence[str]) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" font-size="11" fill="currentColor">'
        + "".join(parts)
        + "</svg>"
    )


def line_chart(chart: Chart) -> str:
    """Lines at their x values, broken at NaN; a single point is a dot; every point has a
    tooltip. Identical series are drawn once, named together."""
    merged = merge_identical(chart.series)
    notes = list(chart.notes) + nan_notes(merged, chart.x_label)
    series = [downsample(s, MAX_POINTS) for s in merged if s.finite()]
    if not series:
        return f"<p>{escape(chart.title)}: no finite values. {escape(' '.join(notes))}</p>"
    xs = [x for s in series for x, _ in s.finite()]
    ys = [y for s in series for _, y in s.finite()]
    x = value_axis(xs) if chart.points else x_axis(xs)
    if chart.x_names:  # positions of commits: ticks on whole numbers only
        x = replace(x, ticks=tuple(t for t in x.ticks if float(t).is_integer()))
    frame = _Frame(x, value_axis(ys), chart.x_label, chart.y_label or chart.title, chart.x_names)
    parts = frame.draw(chart.title)
    for s in series:
        label = escape(s.label)
        segments: list[list[tuple[float, float]]] = [[]]
        for vx, vy in zip(s.xs, s.ys, strict=True):
            if math.isfinite(vy) and math.isfinite(frame.x.to_axis(vx)):
                segments[-1].append((vx, vy))
            elif segments[-1]:
                segments.append([])
        for segment in segments:
            if len(segment) > 1 and not chart.points:
                points = " ".join(f"{frame.px(a):.1f},{frame.py(b):.1f}" for a, b in segment)
                parts.append(
                    f'<polyline fill="none" stroke="{s.colour}" stroke-width="2" '
                    f'points="{points}"><title>{label}</title></polyline>'
                )
            dots = segment if (chart.points or len(segment) == 1) else segment
            radius = 4 if (chart.points or len(segment) == 1) else 2.2
            opacity = "" if (chart.points or len(segment) == 1) else ' fill-opacity="0"'
            for a, b in dots:
                parts.append(
                    f'<circle cx="{frame.px(a):.1f}" cy="{frame.py(b):.1f}" r="{radius}" '
                    f'fill="{s.colour}"{opacity}><title>{label}: {escape(chart.x_label)} '
                    f"{escape(chart.x_text(a))}, {plain(b)}</title></circle>"
                )
    return f"<figure>{_svg(chart.title, parts)}{_legend(series, notes)}</figure>"


def parallel_coordinates(
    title: str,
    axes: Sequence[str],
    rows: Sequence[tuple[str, Sequence[object]]],
    colours: Sequence[str],
) -> str:
    """One line per run across one vertical axis per param (and the metric, last): numbers
    on a linear (or log) scale, other values as evenly spaced categories."""
    if len(axes) < 2 or not rows:
        return ""
    left, right, top, bottom = 70, 70, 40, 30
    span_x = (WIDTH - left - right) / (len(axes) - 1)
    positions: list[dict[object, float]] = []
    labels: list[list[tuple[float, str]]] = []
    for index in range(len(axes)):
        column = [row[1][index] for row in rows]
        numbers = [v for v in column if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if numbers and len(numbers) == len([v for v in column if v is not None]):
            axis = value_axis([float(v) for v in numbers], pad=0.02)
            place = {
                v: 1 - (axis.to_axis(float(v)) - axis.low) / (axis.high - axis.low)  # type: ignore[arg-type]
                for v in set(numbers)
            }
            ticks = [
                (1 - (t - axis.low) / (axis.high - axis.low), axis.label(t)) for t in axis.ticks
            ]
        else:
            names = sorted({str(v) for v in column}, key=str)
            step = 1 / max(1, len(names) - 1)
            place = {v: 1 - step * names.index(str(v)) for v in column}
            ticks = [(1 - step * i, n) for i, n in enumerate(names)]
        positions.append(place)
        labels.append(ticks)

    def y(fraction: float) -> float:
        return top + (HEIGHT - top - bottom) * fraction

    parts = [
        f'<text class="title" x="{WIDTH / 2}" y="16" text-anchor="middle">{escape(title)}</text>'
    ]
    for index, name in enumerate(axes):
        ax = left + index * span_x
        parts.append(
            f'<line class="axis" x1="{ax:.1f}" y1="{top}" x2="{ax:.1f}" y2="{HEIGHT - bottom}"/>'
            f'<text x="{ax:.1f}" y="{top - 10}" text-anchor="middle" font-weight="bold">'
            f"{escape(name[:24])}</text>"
        )
        last = index == len(axes) - 1  # its labels go outside, right of the axis
        for fraction, text in labels[index]:
            parts.append(
                f'<text x="{ax + 4 if last else ax - 4:.1f}" y="{y(fraction) + 4:.1f}" '
                f'text-anchor="{"start" if last else "end"}">{escape(str(text)[:12])}</text>'
            )
    for (name, values), colour in zip(rows, colours, strict=True):
        points = [
            f"{left + i * span_x:.1f},{y(positions[i][v]):.1f}"
            for i, v in enumerate(values)
            if v in positions[i]
        ]
        tip = ", ".join(f"{a}={plain(v) if isinstance(v, float) else v}"
                        for a, v in zip(axes, values, strict=True))  # fmt: skip
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" stroke-opacity="0.85" '
            f'points="{" ".join(points)}"><title>{escape(name)}: {escape(tip)}</title></polyline>'
        )
    return f"<figure>{_svg(title, parts)}</figure>"


def confusion_matrix(title: str, actual: Sequence[str], predicted: Sequence[str]) -> str:
    """A heatmap of counts, actual classes down, predicted across."""
    classes = sorted(set(actual) | set(predicted), key=_class_order)
    counts: dict[tuple[str, str], int] = {}
    for a, p in zip(actual, predicted, strict=True):
        counts[(a, p)] = counts.get((a, p), 0) + 1
    if not classes:
        return ""
    biggest = max(counts.values())
    n = len(classes)
    cell = min(36.0, (HEIGHT - 70) / n)
    left, top = 90.0, 40.0
    parts = [
        f'<text class="title" x="{WIDTH / 2}" y="16" text-anchor="middle">{escape(title)}</text>',
        f'<text x="{left + n * cell / 2:.1f}" y="{top - 6}" text-anchor="middle">predicted</text>',
        f'<text transform="translate(14 {top + n * cell / 2:.1f}) rotate(-90)" '
        'text-anchor="middle">actual</text>',
    ]
    for i, a in enumerate(classes):
        parts.append(
            f'<text x="{left - 6}" y="{top + (i + 0.6) * cell:.1f}" text-anchor="end">'
            f"{escape(a[:12])}</text>"
        )
        for j, p in enumerate(classes):
            count = counts.get((a, p), 0)
            shade = count / biggest if biggest else 0
            parts.append(
                f'<rect x="{left + j * cell:.1f}" y="{top + i * cell:.1f}" width="{cell:.1f}" '
                f'height="{cell:.1f}" fill="#0072b2" fill-opacity="{0.08 + 0.92 * shade:.2f}">'
                f"<title>actual {escape(a)}, predicted {escape(p)}: {count}</title></rect>"
            )
            if n <= 15:
                parts.append(
                    f'<text x="{left + (j + 0.5) * cell:.1f}" y="{top + (i + 0.6) * cell:.1f}" '
                    f'text-anchor="middle" class="{"on-dark" if shade > 0.5 else ""}">'
                    f"{count}</text>"
                )
    return f"<figure>{_svg(title, parts)}</figure>"


def _class_order(name: str) -> tuple[int, float | str]:
    try:
        return (0, float(name))
    except ValueError:
        return (1, name)
