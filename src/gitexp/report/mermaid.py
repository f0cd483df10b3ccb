"""Charts as Mermaid `xychart-beta` blocks, which GitHub and GitLab draw in a comment.

xychart-beta is narrow, and each limit shapes what is written here:
- numbers must be plain decimals (`1e-05` is a parse error), so values are written with no
  exponent, divided by a power of ten named in the axis title when they are very large or
  small, or as log10 on a log axis;
- a line is a list of y values placed on the x-axis categories in order, starting at the
  first: every series is sampled on one shared grid of steps (so a run logged every 10 steps
  is not drawn 10x faster), and a shorter line simply has fewer values (Mermaid draws it up to
  its end);
- every category gets a label, so all but about ten get unique invisible labels (zero-width
  characters), which keeps the axis readable at 500 steps;
- a line cannot have gaps: a line stops at its first NaN, and the legend says where;
- text cannot hold `"`, and `%%` starts a comment: titles keep a safe set of characters.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from gitexp.core.charts import (
    Chart,
    Series,
    merge_identical,
    nan_notes,
    plain,
    sample,
    shared_grid,
    value_axis,
)

MAX_POINTS = 60
INVISIBLE = ("\u200b", "\u200c", "\u200d", "\u2060")
UNSAFE_TEXT = re.compile(r"[^\w .,:/()+=×·⁰¹²³⁴⁵⁶⁷⁸⁹⁻₀₁\-]")


@dataclass(frozen=True)
class Drawn:
    """A Mermaid block, its legend line and the notes about what it could not draw."""

    block: str
    legend: str
    notes: tuple[str, ...]
    series: tuple[Series, ...]


def safe_text(text: str, limit: int = 80) -> str:
    """Text for a quoted Mermaid string: no quotes, no `%%`, no markup, one line."""
    text = UNSAFE_TEXT.sub("_", " ".join(text.split()))
    return text[:limit] or "_"


def _blank(index: int) -> str:
    """A unique label that shows nothing (Mermaid drops duplicate categories)."""
    digits = []
    index += 1
    while index:
        index, rest = divmod(index - 1, len(INVISIBLE))
        digits.append(INVISIBLE[rest])
    return "".join(digits)


def mermaid_chart(chart: Chart, max_points: int = MAX_POINTS) -> Drawn | None:
    """The chart as a Mermaid block, or None when no series has a finite value."""
    merged = merge_identical(chart.series)
    notes = list(chart.notes) + nan_notes(merged, chart.x_label)
    drawable = [s for s in merged if s.finite()]
    if not drawable:
        return None
    # Commits are named positions: the axis shows all of them, with or without a value.
    span = [Series.of("", [0.0, 0.0], [0, len(chart.x_names) - 1])] if chart.x_names else []
    grid = shared_grid(drawable + span, max_points)
    xs = list(grid.xs)
    values = [sample(s, xs) for s in drawable]
    # A line starts at the first category: start where every line has a value.
    start = max(next(i for i, v in enumerate(vs) if math.isfinite(v)) for vs in values)
    if start:
        notes.append(f"drawn from {chart.x_label} {plain(xs[start])}, where every line starts")
        xs = xs[start:]
        values = [vs[start:] for vs in values]
    labels = [
        chart.x_text(x, grid.decimals) if (i + start) in grid.labelled else None
        for i, x in enumerate(xs)
    ]
    if len(xs) == 1:  # one step: a short flat line is the marker
        labels.append(None)
    for index, vs in enumerate(values):
        if len(vs) == 1:
            values[index] = [vs[0], vs[0]]
            notes.append(f"{drawable[index].label}: one value, {plain(vs[0])}")
    axis = value_axis([v for vs in values for v in vs])
    decimals = 4 if axis.log else axis.decimals + 2
    categories = ", ".join(
        f'"{label}"' if label is not None else f'"{_blank(i)}"' for i, label in enumerate(labels)
    )
    y_title = safe_text(axis.titled(chart.y_label or chart.title))
    lines = [
        "```mermaid",
        '%%{init: {"themeVariables": {"xyChart": {"plotColorPalette": "'
        + ", ".join(s.colour for s in drawable)
        + '"}}}}%%',
        "xychart-beta",
        f'    title "{safe_text(chart.title)}"',
        f'    x-axis "{safe_text(chart.x_label)}" [{categories}]',
        f'    y-axis "{y_title}" {plain(axis.low, decimals)} --> {plain(axis.high, decimals)}',
    ]
    for vs in values:
        lines.append(f"    line [{', '.join(plain(axis.to_axis(v), decimals) for v in vs)}]")
    lines.append("```")
    legend = "  ".join(f"{s.emoji} {s.label}" for s in drawable)
    return Drawn("\n".join(lines), legend, tuple(notes), tuple(drawable))


def mermaid_bars(title: str, labels: Sequence[str], values: Sequence[float]) -> str | None:
    """One bar per label (a value per run, for example), or None without a finite value."""
    pairs = [(label, v) for label, v in zip(labels, values, strict=True) if math.isfinite(v)]
    if not pairs:
        return None
    axis = value_axis([v for _, v in pairs] + [0.0], allow_log=False)
    decimals = axis.decimals + 2
    seen: set[str] = set()
    names = []
    for label, _ in pairs:
        name = safe_text(label, 24)
        while name in seen:  # Mermaid merges equal categories
            name += "'"
        seen.add(name)
        names.append(f'"{name}"')
    bars = ", ".join(plain(axis.to_axis(v), decimals) for _, v in pairs)
    return "\n".join(
        [
            "```mermaid",
            "xychart-beta",
            f'    title "{safe_text(title)}"',
            f"    x-axis [{', '.join(names)}]",
            f'    y-axis "{safe_text(axis.titled(title))}" '
            f"{plain(axis.low, decimals)} --> {plain(axis.high, decimals)}",
            f"    bar [{bars}]",
            "```",
        ]
    )
