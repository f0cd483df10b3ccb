"""Metric histories as charts: Mermaid `xychart-beta` for markdown (GitHub and GitLab render it
in a comment, no image hosting), inline SVG for HTML. Pure functions over numbers."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

# One colour per line, the same in Mermaid and SVG, named by an emoji of that colour so a
# markdown legend can show which line is which (xychart-beta draws no legend itself).
PALETTE = (
    ("#1f77b4", "🔵"),
    ("#ff7f0e", "🟠"),
    ("#2ca02c", "🟢"),
    ("#d62728", "🔴"),
    ("#9467bd", "🟣"),
    ("#8c564b", "🟤"),
)


@dataclass(frozen=True)
class Series:
    label: str
    values: tuple[float, ...]


def _finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def _number(value: float) -> str:
    return f"{value:.6g}"


def mermaid_chart(title: str, series: Sequence[Series]) -> tuple[str, str]:
    """A Mermaid block and its legend line. Lines are cut to the shortest history (the note
    in the legend says so), since xychart-beta needs one value per x-axis step."""
    series = [s for s in series if _finite(s.values)][: len(PALETTE)]
    length = min(len(s.values) for s in series)
    ys = [v for s in series for v in _finite(s.values[:length])]
    low, high = min(ys), max(ys)
    if low == high:
        low, high = low - 1, high + 1
    colours = ", ".join(colour for colour, _ in PALETTE[: len(series)])
    safe_title = title.replace('"', "'")
    lines = [
        "```mermaid",
        f'%%{{init: {{"themeVariables": {{"xyChart": {{"plotColorPalette": "{colours}"}}}}}}}}%%',
        "xychart-beta",
        f'    title "{safe_title}"',
        f'    x-axis "step" [{", ".join(str(i) for i in range(length))}]',
        f'    y-axis "{safe_title}" {_number(low)} --> {_number(high)}',
    ]
    for s in series:
        values = [_number(v) if math.isfinite(v) else _number(low) for v in s.values[:length]]
        lines.append(f"    line [{', '.join(values)}]")
    lines.append("```")
    legend = "  ".join(f"{emoji} {s.label}" for s, (_, emoji) in zip(series, PALETTE, strict=False))
    longest = max(len(s.values) for s in series)
    if longest != length:
        legend += f"  (cut to the {length} steps all histories have; the longest has {longest})"
    return "\n".join(lines), legend


def svg_chart(title: str, series: Sequence[Series], width: int = 640, height: int = 320) -> str:
    """An SVG line chart with axes and a legend, for inline use in HTML (where the SVG
    namespace is implied, so the page names no URL at all)."""
    series = [s for s in series if _finite(s.values)][: len(PALETTE)]
    left, right, top, bottom = 60, 20, 30, 60
    steps = max(len(s.values) for s in series)
    ys = [v for s in series for v in _finite(s.values)]
    low, high = min(ys), max(ys)
    if low == high:
        low, high = low - 1, high + 1

    def x(i: int) -> float:
        return left + (width - left - right) * (i / max(1, steps - 1))

    def y(v: float) -> float:
        return top + (height - top - bottom) * (1 - (v - low) / (high - low))

    parts = [
        f'<svg width="{width}" height="{height}" role="img" aria-label="{html.escape(title)}">',
        f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="14">'
        f"{html.escape(title)}</text>",
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" '
        'stroke="#444"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#444"/>',
    ]
    for value in (low, (low + high) / 2, high):
        parts.append(
            f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end" font-size="11">'
            f"{_number(value)}</text>"
        )
    for i in sorted({0, steps - 1, (steps - 1) // 2}):
        parts.append(
            f'<text x="{x(i):.1f}" y="{height - bottom + 16}" text-anchor="middle" '
            f'font-size="11">{i}</text>'
        )
    for index, s in enumerate(series):
        colour = PALETTE[index][0]
        points = " ".join(
            f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(s.values) if math.isfinite(v)
        )
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>'
        )
        lx = left + index * 150
        parts.append(
            f'<rect x="{lx}" y="{height - 22}" width="12" height="12" fill="{colour}"/>'
            f'<text x="{lx + 16}" y="{height - 12}" font-size="12">{html.escape(s.label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
