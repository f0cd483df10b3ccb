"""Charts of the report: the axis and sampling rules (pure), and every kind of history the
report meets, drawn by the real Mermaid library in Chromium: exponent values, NaN, all-NaN,
one step, 500 steps, strided steps, 12 runs, hostile names."""

from __future__ import annotations

import math
import re

import pytest

from gitexp.core.charts import (
    Chart,
    Colours,
    Series,
    merge_identical,
    nan_notes,
    plain,
    sample,
    shared_grid,
    value_axis,
)
from gitexp.report.mermaid import mermaid_chart
from gitexp.report.svg import line_chart

NAN = float("nan")
COLOURS = Colours(["base", "head", "best"])


def line(label: str, ys: list[float], xs: list[float] | None = None) -> Series:
    return COLOURS.paint(Series.of(label, ys, xs))


def drawn(chart: Chart) -> tuple[str, str, tuple[str, ...]]:
    result = mermaid_chart(chart)
    assert result is not None
    source = result.block.split("\n", 1)[1].rsplit("\n", 1)[0]
    return source, result.legend, result.notes


def values_of(source: str) -> list[list[float]]:
    return [[float(v) for v in m.split(",")] for m in re.findall(r"line \[([^\]]*)\]", source)]


def test_plain_numbers_never_use_exponents() -> None:
    assert plain(1e-05) == "0.00001"
    assert plain(1.2e06) == "1200000"
    assert plain(-0.0) == "0"
    assert plain(0.30000000000000004) == "0.3"
    assert plain(2.5, 0) == "2"  # to the places asked for


def test_value_axis_pads_scales_and_goes_log_past_three_orders() -> None:
    axis = value_axis([0.2, 0.9])
    assert axis.low < 0.2 and axis.high > 0.9 and not axis.log and axis.power == 0
    assert all(axis.low <= t <= axis.high for t in axis.ticks) and len(axis.ticks) <= 11
    assert value_axis([1e-5, 1e3]).log  # eight orders of magnitude
    assert not value_axis([-1, 1e5]).log  # a log axis cannot show -1
    tokens = value_axis([1.2e6, 3.6e6])
    assert tokens.power == 6 and tokens.titled("tokens") == "tokens (×10⁶)"
    assert value_axis([5.0, 5.0]).low < 5 < value_axis([5.0, 5.0]).high  # one value


def test_strided_steps_are_placed_by_step_not_by_row() -> None:
    every_10 = Series.of("base", [1.0, 2.0, 3.0], [0, 10, 20])
    every_1 = Series.of("head", [float(i) for i in range(21)], list(range(21)))
    grid = shared_grid([every_10, every_1], 60)
    assert grid.xs[0] == 0 and grid.xs[-1] == 20
    base = sample(every_10, grid.xs)
    assert base[grid.xs.index(10)] == 2.0 and base[grid.xs.index(5)] == 1.5  # on the line
    assert len(base) == len(grid.xs)  # both end at step 20


def test_sampling_ends_on_the_last_value_and_stops_at_nan() -> None:
    series = Series.of("head", [5.0, 4.0, 3.0, NAN, NAN], [0, 1, 2, 3, 4])
    assert sample(series, [0, 1, 2, 3, 4]) == [5.0, 4.0, 3.0]
    long = Series.of("x", [float(i) for i in range(997)])
    grid = shared_grid([long], 60).xs
    values = sample(long, grid)
    assert values[-1] == 996.0  # the table's last value, not an interpolated neighbour


def test_identical_series_are_drawn_once_and_named_together() -> None:
    merged = merge_identical([line("base", [1, 2]), line("head", [1, 2]), line("best", [2, 3])])
    assert [s.label for s in merged] == ["base = head", "best"]
    assert merge_identical([line("a", [NAN]), line("b", [NAN])])[0].label == "a = b"


def test_nan_notes_say_where() -> None:
    notes = nan_notes([line("head", [1, 2, NAN, NAN], [0, 10, 20, 30]), line("base", [NAN])])
    assert notes == ["head: NaN from step 20", "base: no finite value (NaN from step 0)"]
    assert nan_notes([line("x", [1, NAN, 2])]) == ["x: NaN at step 1 (gaps in the line)"]


def test_colours_stay_with_their_series() -> None:
    palette = Colours(["base", "head"])
    assert palette.of("head") == palette.of("head")
    assert palette.of("best") not in (palette.of("base"), palette.of("head"))


FIXTURES = {
    "exponents": Chart(
        "lr", (line("base", [1e-05, 2e-05, 3e-05]), line("head", [1e-5, 5e-6, 1e-6]))
    ),
    "huge": Chart("tokens", (line("base", [1.2e06, 2.4e06, 3.6e06]),)),
    "nan": Chart("loss", (line("base", [1, 0.5, 0.3, 0.2]), line("head", [1, 0.6, NAN, NAN]))),
    "all-nan": Chart("loss", (line("base", [NAN, NAN]), line("head", [1, 0.5]))),
    "one-step": Chart("acc", (line("base", [0.5]), line("head", [0.7]))),
    "500-steps": Chart(
        "loss",
        (
            line("base", [math.exp(-i / 100) for i in range(500)]),
            line("head", [math.exp(-i / 80) for i in range(400)]),
        ),
    ),  # fmt: skip
    "strided": Chart(
        "loss",
        (
            line("base", [1 / (1 + i) for i in range(0, 101, 10)], list(range(0, 101, 10))),
            line("head", [1 / (1 + i) for i in range(101)]),
        ),
    ),  # fmt: skip
    "span": Chart("grad_norm", (line("base", [1000.0, 1.0, 0.01, 0.0001]),)),
    "twelve-runs": Chart(
        "acc",
        tuple(
            Colours().paint(Series.of(f"run-{i}", [i + j / 10 for j in range(12)]))
            for i in range(12)
        ),
    ),  # fmt: skip
    "hostile": Chart(
        'a "quoted" %% title <img src=x onerror=alert(1)> #35; `code` [x](javascript:y)',
        (line('run "x" %% [y](z) <b>', [1, 2]),),
        y_label="%%{init: {}}%%",
    ),
    "twins": Chart("acc", (line("base", [1, 2, 3]), line("head", [1, 2, 3]))),
}


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_every_fixture_renders_in_mermaid(name: str, mermaid) -> None:
    source, legend, notes = drawn(FIXTURES[name])
    numbers = re.findall(r"^\s*(?:line|y-axis).*$", source, re.M)
    assert numbers and not re.search(r"\d[eE][-+]?\d", "".join(numbers))  # no exponents
    counts = mermaid.line_points(source)  # raises on any parse error
    expected = [len(v) for v in values_of(source)]
    assert counts == expected and all(c >= 2 for c in counts)  # every line is visible


def test_what_mermaid_draws_is_true(mermaid) -> None:
    # NaN: the head stops where NaN starts; the base goes on
    source, _, notes = drawn(FIXTURES["nan"])
    assert mermaid.line_points(source) == [4, 2] and "head: NaN from step 2" in notes
    # lines of different lengths keep their lengths (no cutting to the shortest)
    source, _, _ = drawn(FIXTURES["500-steps"])
    base, head = mermaid.line_points(source)
    assert head < base and abs(head / base - 400 / 500) < 0.05
    # a run logged every 10 steps ends where the one logged every step ends
    source, _, _ = drawn(FIXTURES["strided"])
    assert len(set(mermaid.line_points(source))) == 1
    # at most about ten labels on the x-axis, even at 500 steps
    svg = mermaid.render(drawn(FIXTURES["500-steps"])[0])
    bottom = re.search(r'<g class="bottom-axis">.*?<g class="label">(.*?)</g>', svg, re.S)
    assert bottom and len(re.findall(r">\d+</text>", bottom[1])) <= 11
    # single steps are drawn as a short flat line and named
    source, _, notes = drawn(FIXTURES["one-step"])
    assert values_of(source) == [[0.5, 0.5], [0.7, 0.7]] and "head: one value, 0.7" in notes
    # identical lines: one line, a legend that says so
    source, legend, _ = drawn(FIXTURES["twins"])
    assert len(values_of(source)) == 1 and "base = head" in legend
    # an all-NaN line is said, not drawn as the chart's minimum
    source, legend, notes = drawn(FIXTURES["all-nan"])
    assert len(values_of(source)) == 1 and "base: no finite value (NaN from step 0)" in notes
    # eight orders of magnitude: a log axis, named in the title
    source, _, _ = drawn(FIXTURES["span"])
    assert "(log₁₀)" in source and values_of(source) == [[3, 0, -2, -4]]


def test_a_history_with_no_finite_value_is_no_chart() -> None:
    assert mermaid_chart(Chart("loss", (line("head", [NAN, NAN]),))) is None
    assert "no finite values" in line_chart(Chart("loss", (line("head", [NAN]),)))


def test_svg_chart_has_gaps_markers_ticks_and_tooltips() -> None:
    svg = line_chart(
        Chart("loss", (line("base", [1.0, 0.5, NAN, 0.2, 0.1]), line("head", [0.7], [2])))
    )
    assert svg.count("<polyline") == 2  # the base is broken at its NaN
    assert 'r="4"' in svg  # the single point of the head is a marker
    assert svg.count('class="grid"') >= 6  # gridlines at ticks
    assert "<title>head: step 2, 0.7</title>" in svg
    assert "<script" not in svg and "head" in svg.split("<ul", 1)[1]  # an HTML legend
