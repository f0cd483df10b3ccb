"""What a chart shows, independent of how it is drawn: series of (x, y) points, the axes
(nice ticks, padding, log scale, a power-of-ten factor), identical series merged, NaN found,
one colour per series across a report. Pure functions over numbers; the Mermaid and SVG
writers in gitexp.report draw from these.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal

# Colour-blind-safe (Okabe-Ito, then Tableau), each with an emoji of a close colour so a
# markdown legend can say which line is which (Mermaid's xychart draws no legend).
PALETTE = (
    ("#0072b2", "🔵"),
    ("#e69f00", "🟠"),
    ("#009e73", "🟢"),
    ("#d55e00", "🔴"),
    ("#cc79a7", "🟣"),
    ("#8c564b", "🟤"),
    ("#56b4e9", "🔹"),
    ("#f0e442", "🟡"),
    ("#000000", "⚫"),
    ("#999999", "⚪"),
    ("#17becf", "🔷"),
    ("#bcbd22", "🟨"),
)
LOG_SPAN = 1000.0  # more than three orders of magnitude between the extremes: log scale
SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


@dataclass(frozen=True)
class Series:
    """One line: x values (steps) and y values (NaN allowed), in x order."""

    label: str
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    colour: str = PALETTE[0][0]
    emoji: str = PALETTE[0][1]

    @classmethod
    def of(cls, label: str, ys: Sequence[float], xs: Sequence[float] | None = None) -> Series:
        xs = tuple(range(len(ys))) if xs is None else tuple(xs)
        return cls(label, tuple(float(x) for x in xs), tuple(_float(y) for y in ys))

    def finite(self) -> list[tuple[float, float]]:
        return [(x, y) for x, y in zip(self.xs, self.ys, strict=True) if math.isfinite(y)]

    def first_nan(self) -> float | None:
        """The x of the first NaN or infinity, if any."""
        return next(
            (x for x, y in zip(self.xs, self.ys, strict=True) if not math.isfinite(y)), None
        )


@dataclass(frozen=True)
class Chart:
    title: str
    series: tuple[Series, ...]
    x_label: str = "step"
    y_label: str = ""
    notes: tuple[str, ...] = ()
    points: bool = False  # a scatter: markers only, no lines
    x_names: tuple[str, ...] = ()  # names of the x positions 0, 1, 2... (commits)

    def x_text(self, x: float, decimals: int | None = None) -> str:
        if self.x_names and float(x).is_integer() and 0 <= x < len(self.x_names):
            return self.x_names[int(x)]
        return plain(x, decimals)


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


class Colours:
    """The same colour for the same series label in every chart of a report."""

    def __init__(self, labels: Iterable[str] = ()) -> None:
        self.assigned: dict[str, tuple[str, str]] = {}
        for label in labels:
            self.of(label)

    def of(self, label: str) -> tuple[str, str]:
        if label not in self.assigned:
            self.assigned[label] = PALETTE[len(self.assigned) % len(PALETTE)]
        return self.assigned[label]

    def paint(self, series: Series, key: str | None = None) -> Series:
        colour, emoji = self.of(key or series.label)
        return replace(series, colour=colour, emoji=emoji)


def merge_identical(series: Sequence[Series]) -> list[Series]:
    """Series with the same points drawn once, labelled `head = base` (they would hide each
    other while the legend listed both)."""
    merged: list[Series] = []
    for s in series:
        twin = next((i for i, m in enumerate(merged) if m.xs == s.xs and _same(m.ys, s.ys)), None)
        if twin is None:
            merged.append(s)
        else:
            merged[twin] = replace(merged[twin], label=f"{merged[twin].label} = {s.label}")
    return merged


def _same(a: Sequence[float], b: Sequence[float]) -> bool:
    return len(a) == len(b) and all(
        x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True)
    )


def nan_notes(series: Sequence[Series], x_label: str = "step") -> list[str]:
    notes = []
    for s in series:
        bad = [x for x, y in zip(s.xs, s.ys, strict=True) if not math.isfinite(y)]
        if not bad:
            continue
        finite = s.finite()
        if not finite:
            notes.append(f"{s.label}: no finite value (NaN from {x_label} {plain(bad[0])})")
        elif finite[-1][0] < bad[0]:
            notes.append(f"{s.label}: NaN from {x_label} {plain(bad[0])}")
        else:
            steps = ", ".join(plain(x) for x in bad[:5]) + (" …" if len(bad) > 5 else "")
            notes.append(f"{s.label}: NaN at {x_label} {steps} (gaps in the line)")
    return notes


# --- numbers ------------------------------------------------------------------------------------


def plain(value: float, decimals: int | None = None) -> str:
    """A number with no exponent (Mermaid's parser reads `1e-05` as an error): to `decimals`
    places when given, else to 6 significant digits."""
    if not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if decimals is not None:
        text = f"{value:.{max(0, decimals)}f}"
    else:
        text = format(Decimal(f"{value:.6g}"), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def nice_step(span: float, count: int) -> float:
    """A step of 1, 2 or 5 times a power of ten that cuts `span` into at most `count` parts."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * power >= raw * (1 - 1e-9):
            return factor * power
    return 10 * power


def nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    step = nice_step(high - low, count)
    start = math.ceil(low / step - 1e-9)
    ticks = []
    i = start
    while i * step <= high + step * 1e-9:
        ticks.append(_clean(i * step, step))
        i += 1
    return ticks


def _clean(value: float, step: float) -> float:
    """0.30000000000000004 as 0.3: rounded to the precision of the tick step."""
    digits = max(0, -math.floor(math.log10(step)) + 2) if step > 0 else 6
    return round(value, digits)


def decimals_for(step: float) -> int:
    """Decimal places that tell ticks `step` apart."""
    if step <= 0 or not math.isfinite(step):
        return 6
    return max(0, -math.floor(math.log10(step) + 1e-9) + (1 if step % 1 else 0))


@dataclass(frozen=True)
class Axis:
    """A value axis: its range, ticks, and how values map onto it."""

    low: float
    high: float
    ticks: tuple[float, ...]
    log: bool = False
    power: int = 0  # values are shown divided by 10**power
    decimals: int = 2

    def to_axis(self, value: float) -> float:
        """A value in axis units (log10 of it on a log axis, divided by the factor)."""
        if self.log:
            return math.log10(value) if value > 0 else math.nan
        return value / 10**self.power

    def label(self, tick: float) -> str:
        """A tick as a reader reads it: `0.001` on a log axis, `2.5` with the factor in the
        title on a scaled one."""
        if self.log:
            return plain(10**tick)
        return plain(tick, self.decimals)

    @property
    def unit(self) -> str:
        if self.log:
            return "log₁₀"
        return f"×10{str(self.power).translate(SUPERSCRIPT)}" if self.power else ""

    def titled(self, title: str) -> str:
        return f"{title} ({self.unit})" if self.unit else title


def value_axis(values: Iterable[float], allow_log: bool = True, pad: float = 0.05) -> Axis:
    """An axis for the finite values: padded, with nice ticks; log scale when the values are
    all positive and span more than three orders of magnitude; a power-of-ten factor when
    they are very large or very small, so the numbers stay short and plain."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return Axis(0.0, 1.0, (0.0, 0.5, 1.0), decimals=1)
    low, high = min(finite), max(finite)
    if allow_log and low > 0 and high / low > LOG_SPAN:
        lo, hi = math.floor(math.log10(low)), math.ceil(math.log10(high))
        if lo == hi:
            hi += 1
        ticks = [float(t) for t in range(lo, hi + 1)]
        while len(ticks) > 9:
            ticks = ticks[::2]
        return Axis(float(lo), float(hi), tuple(ticks), log=True)
    biggest = max(abs(low), abs(high))
    power = 0
    if biggest >= 1e6 or 0 < biggest < 1e-3:
        power = 3 * math.floor(math.log10(biggest) / 3)
    low, high = low / 10**power, high / 10**power
    if low == high:
        spread = abs(low) * 0.1 or 1.0
        low, high = low - spread, high + spread
    span = high - low
    low, high = low - pad * span, high + pad * span
    step = nice_step(high - low, 10)
    low = math.floor(low / step + 1e-9) * step
    high = math.ceil(high / step - 1e-9) * step
    ticks = tuple(nice_ticks(low, high, 6))
    return Axis(
        _clean(low, step), _clean(high, step), ticks, power=power, decimals=decimals_for(step)
    )


def x_axis(values: Iterable[float], count: int = 8) -> Axis:
    """A step axis: no padding, ticks at round numbers (at most about `count` of them)."""
    finite = [v for v in values if math.isfinite(v)]
    low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
    if low == high:
        low, high = low - 1, high + 1
    step = nice_step(high - low, count)
    ticks = tuple(nice_ticks(low, high, count))
    return Axis(low, high, ticks, decimals=decimals_for(step))


# --- resampling for charts that need one shared grid of x values ------------------------------


@dataclass(frozen=True)
class Grid:
    """Evenly spaced x values, with the ones worth a label."""

    xs: tuple[float, ...]
    labelled: frozenset[int] = field(default_factory=frozenset)
    decimals: int = 0


def shared_grid(series: Sequence[Series], max_points: int, max_labels: int = 10) -> Grid:
    """A grid from the first to the last x of the series: their own x values when they all
    share one stride and fit, else evenly spaced round numbers."""
    starts = [s.finite()[0][0] for s in series if s.finite()]
    ends = [s.finite()[-1][0] for s in series if s.finite()]
    if not starts:
        return Grid(())
    low, high = min(starts), max(ends)
    union = sorted({x for s in series for x, _ in s.finite()})
    strides = {round(b - a, 9) for a, b in zip(union, union[1:], strict=False)}
    if len(union) <= max_points and len(strides) <= 1:
        xs = tuple(union)
        stride = strides.pop() if strides else 1.0
    else:
        stride = nice_step(high - low, max_points - 1)
        first = math.floor(low / stride + 1e-9)
        last = math.ceil(high / stride - 1e-9)
        xs = tuple(_clean(i * stride, stride) for i in range(first, last + 1))
    label_step = nice_step(xs[-1] - xs[0], max_labels - 1) if len(xs) > 1 else 1.0
    label_step = max(label_step, stride)
    labelled = frozenset(
        i
        for i, x in enumerate(xs)
        if abs(x / label_step - round(x / label_step)) < 1e-6 or len(xs) <= max_labels
    )
    return Grid(xs, labelled, decimals_for(min(label_step, stride)))


def sample(series: Series, grid: Sequence[float]) -> list[float]:
    """The series' line at the grid's x values, up to where the line ends: linear between
    logged points (what a line between them shows anyway), never past the last finite point
    before a NaN, and ending on the series' own last value."""
    points = series.finite()
    stop = series.first_nan()
    if stop is not None:
        points = [(x, y) for x, y in points if x < stop]
    if not points:
        return []
    xs = [x for x, _ in points]
    out: list[float] = []
    last_x = xs[-1]
    for i, g in enumerate(grid):
        if g > last_x:
            # the grid point nearest the end carries the last value, so a line ends where
            # the table says it does
            previous = grid[i - 1] if i else g
            if out and g - last_x < last_x - previous:
                out[-1] = points[-1][1]
            elif g - last_x < (g - previous) / 2:
                out.append(points[-1][1])
            break
        if g < xs[0]:
            out.append(math.nan)  # before the series starts
            continue
        j = bisect.bisect_left(xs, g)
        if xs[j] == g:
            out.append(points[j][1])
        else:
            (x0, y0), (x1, y1) = points[j - 1], points[j]
            out.append(y0 + (y1 - y0) * (g - x0) / (x1 - x0))
    else:
        if out and grid and grid[-1] < last_x:
            out[-1] = points[-1][1]
    return out


def downsample(series: Series, max_points: int) -> Series:
    """At most `max_points` points, keeping the first and last and the NaN marks."""
    if len(series.xs) <= max_points:
        return series
    finite = [math.isfinite(y) for y in series.ys]
    edges = {i for i in range(1, len(finite)) if finite[i] != finite[i - 1]}
    keep = sorted(
        {round(i * (len(series.xs) - 1) / (max_points - 1)) for i in range(max_points)}
        | edges
        | {i - 1 for i in edges}
    )
    return replace(
        series, xs=tuple(series.xs[i] for i in keep), ys=tuple(series.ys[i] for i in keep)
    )
