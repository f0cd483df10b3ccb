"""The sweep syntax of `-S`, the grid it spans, and the names of its points. Pure functions.

DVC's rule (`dvc exp run -S`, Hydra's override grammar): after the first `=`, a value is a
sweep when it is `choice(a,b,...)`, `range(start,stop[,step])`, or has a comma outside
brackets and quotes (`0.001,0.01`); anything else is one value, so `-S model.layers=[128,64]`
and `-S name='a,b'` stay single values. Each element of a sweep means exactly what it would
mean alone after `-S KEY=` (YAML). `interval(low,high)` and `tag(log, interval(low,high))`
are continuous ranges, for `--trials` only.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from gitexp.core.names import MAX_NAME_BYTES, validate_name
from gitexp.errors import UsageError

MAX_GRID_POINTS = 10_000
_CALL = re.compile(r"^\s*(choice|range|interval|tag|glob)\s*\((.*)\)\s*$", re.DOTALL)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Axis:
    """One swept param: `target` is what precedes `=` as typed (`[+][FILE:]KEY`)."""

    target: str
    key: str
    literals: tuple[str, ...]  # each value as it would be typed after `-S KEY=`

    @property
    def size(self) -> int:
        return len(self.literals)


@dataclass(frozen=True)
class Interval:
    """A continuous range, `interval(low, high)`; sampled by `--trials` only."""

    target: str
    key: str
    low: float
    high: float
    log: bool


@dataclass(frozen=True)
class Grid:
    """The `-S` options in the order given: plain overrides (str) and swept params."""

    parts: tuple[str | Axis | Interval, ...]

    @property
    def axes(self) -> list[Axis | Interval]:
        return [p for p in self.parts if not isinstance(p, str)]

    @property
    def is_sweep(self) -> bool:
        return bool(self.axes)

    @property
    def size(self) -> int:
        if any(isinstance(a, Interval) for a in self.axes):
            raise UsageError(
                "interval() is a continuous range: sample it with --trials N --optimize METRIC"
            )
        return math.prod(a.size for a in self.axes if isinstance(a, Axis))

    def overrides(self, values: dict[str, str]) -> tuple[str, ...]:
        """The `-S` specs of one point: plain ones as typed, swept ones with the point's value
        (`values` maps an axis target to its literal)."""
        return tuple(
            p if isinstance(p, str) else f"{p.target}={values[p.target]}" for p in self.parts
        )

    def point(self, index: int) -> dict[str, str]:
        """The index-th point of the product, in the order `itertools.product` gives."""
        values = {}
        for axis in reversed([a for a in self.axes if isinstance(a, Axis)]):
            index, digit = divmod(index, axis.size)
            values[axis.target] = axis.literals[digit]
        return dict(reversed(values.items()))


def split_top_level(text: str) -> list[str] | None:
    """`text` split at commas outside brackets and quotes; None when they do not balance."""
    parts, depth, quote, start = [], 0, "", 0
    closing = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    for i, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "([{":
            stack.append(char)
            depth += 1
        elif char in closing:
            if not stack or stack.pop() != closing[char]:
                return None
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if quote or stack:
        return None
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _number(text: str, spec: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            raise UsageError(f"invalid sweep '{spec}': '{text}' is not a number") from None
    if not math.isfinite(value):
        raise UsageError(f"invalid sweep '{spec}': '{text}' is not a finite number")
    return value


def _range_literals(args: list[str], spec: str) -> tuple[str, ...]:
    if not 1 <= len(args) <= 3:
        raise UsageError(f"invalid sweep '{spec}': write range(stop), range(start, stop[, step])")
    numbers = [_number(a, spec) for a in args]
    start, stop, step = (0, numbers[0], 1) if len(numbers) == 1 else (*numbers[:2], 1)
    if len(numbers) == 3:
        step = numbers[2]
    if step == 0:
        raise UsageError(f"invalid sweep '{spec}': the step of range() must not be 0")
    count = max(0, math.ceil((stop - start) / step))
    if count == 0:
        raise UsageError(f"invalid sweep '{spec}': the range is empty")
    if count > MAX_GRID_POINTS:
        raise UsageError(f"invalid sweep '{spec}': {count} values, over {MAX_GRID_POINTS}")
    if all(isinstance(n, int) for n in (start, stop, step)):
        return tuple(str(start + i * step) for i in range(count))
    # start + i*step, rounded, so range(0.1, 0.5, 0.1) gives 0.3 and not 0.30000000000000004.
    return tuple(repr(round(start + i * step, 12)) for i in range(count))


def _interval(target: str, key: str, args: list[str], log: bool, spec: str) -> Interval:
    if len(args) != 2:
        raise UsageError(f"invalid sweep '{spec}': write interval(low, high)")
    low, high = (float(_number(a, spec)) for a in args)
    if not low < high or (log and low <= 0):
        raise UsageError(
            f"invalid sweep '{spec}': interval(low, high) needs low < high"
            + (" and low > 0 for log" if log else "")
        )
    return Interval(target, key, low, high, log)


def _key_of(target: str) -> str:
    """`+params.yaml:train.lr` -> `train.lr`."""
    return target.removeprefix("+").rpartition(":")[2].removeprefix("+")


def parse_axis(spec: str) -> Axis | Interval | None:
    """The swept param a `-S` spec describes, or None when it sets a single value."""
    target, eq, value = spec.partition("=")
    if not eq or not target:
        return None
    key = _key_of(target)
    call = _CALL.match(value)
    if call:
        function, inner = call.group(1), call.group(2)
        args = split_top_level(inner)
        if args is None:
            return None
        if function == "glob":
            raise UsageError(f"invalid sweep '{spec}': glob() is not supported (as in DVC)")
        if function == "range":
            return Axis(target, key, _range_literals(args, spec))
        if function == "interval":
            return _interval(target, key, args, False, spec)
        if function == "tag":
            nested = _CALL.match(args[-1]) if args else None
            if len(args) != 2 or args[0] != "log" or not nested or nested.group(1) != "interval":
                raise UsageError(f"invalid sweep '{spec}': write tag(log, interval(low, high))")
            return _interval(target, key, split_top_level(nested.group(2)) or [], True, spec)
    else:
        args = split_top_level(value)
        if args is None or len(args) < 2:
            return None
    if any(not a for a in args):
        raise UsageError(f"invalid sweep '{spec}': a value between commas is empty")
    return Axis(target, key, tuple(args))


def parse_grid(specs: Sequence[str]) -> Grid:
    parts: list[str | Axis | Interval] = []
    seen: set[str] = set()
    for spec in specs:
        axis = parse_axis(spec)
        if axis is not None:
            if axis.target in seen:
                raise UsageError(f"'{axis.target}' is swept twice: give one -S per param")
            seen.add(axis.target)
        parts.append(spec if axis is None else axis)
    return Grid(tuple(parts))


def choose_points(grid: Grid, sample: int | None, seed: int | None) -> list[dict[str, str]]:
    """Every point of the grid, or `sample` of them drawn without replacement (seeded)."""
    size = grid.size
    if sample is not None:
        if sample < 1:
            raise UsageError("--random needs a number of runs of at least 1")
        indices = sorted(random.Random(seed).sample(range(size), min(sample, size)))
        return [grid.point(i) for i in indices]
    if size > MAX_GRID_POINTS:
        raise UsageError(
            f"the grid has {size} points, more than {MAX_GRID_POINTS}: "
            "sample some with --random N, or search with --trials N"
        )
    return [grid.point(i) for i in range(size)]


# --- names ----------------------------------------------------------------------------------


def _labels(axes: Sequence[Axis | Interval]) -> dict[str, str]:
    """Each axis's label in run names: the last part of its key (`lr`), or more of the key
    when two axes share a last part (`model.lr`, `optim.lr`)."""
    keys = {a.target: a.key.split(".") for a in axes}
    depth = 1
    while True:
        labels = {t: ".".join(parts[-depth:]) for t, parts in keys.items()}
        if len(set(labels.values())) == len(labels) or depth > max(map(len, keys.values())):
            break
        depth += 1
    if len(set(labels.values())) != len(labels):  # the same key in two files
        labels = {t: t.removeprefix("+").replace(":", "-") for t in keys}
    return {t: _clean(label) for t, label in labels.items()}


def _clean(text: str) -> str:
    """Text as allowed in a run name part: unsafe characters as '_', no '..'."""
    text = text.strip().strip("'\"")
    text = _UNSAFE.sub("_", text).replace("..", "_")
    return text.strip("_") or "_"


def value_label(literal: str) -> str:
    return _clean(literal)


def point_names(sweep: str, grid: Grid, points: Sequence[dict[str, str]]) -> list[str]:
    """`SWEEP/lr-0.01-depth-4` for each point: deterministic, so a sweep run again finds the
    runs it already has. Collisions after cleaning get `-2`, `-3`; long names a short hash."""
    labels = _labels(grid.axes)
    names: list[str] = []
    taken: set[str] = set()
    for values in points:
        label = "-".join(f"{labels[t]}-{value_label(v)}" for t, v in values.items()) or "run"
        name = _fit(sweep, label, repr(sorted(values.items())))
        stem, number = name, 2
        while name.lower() in taken:
            name = _fit(sweep, f"{stem.rsplit('/', 1)[-1]}-{number}", f"{values}{number}")
            number += 1
        taken.add(name.lower())
        names.append(validate_name(name))
    return names


def _fit(sweep: str, label: str, identity: str) -> str:
    name = f"{sweep}/{label}"
    if len(name.encode()) > MAX_NAME_BYTES:
        digest = hashlib.sha1(identity.encode()).hexdigest()[:8]
        room = MAX_NAME_BYTES - len(sweep.encode()) - len(digest) - 2
        if room < 1:
            raise UsageError(f"sweep name '{sweep}' is too long to name its runs")
        label = f"{label.encode()[:room].decode('ascii', 'ignore').rstrip('._-')}-{digest}"
        name = f"{sweep}/{label}"
    if name.endswith((".", ".lock")):
        name += "_"
    return name


def trial_names(sweep: str, taken: Sequence[str], count: int) -> Iterator[str]:
    """`SWEEP/trial-1`, `SWEEP/trial-2`, ... skipping names in `taken`."""
    lower = {t.lower() for t in taken}
    for number in itertools.count(1):
        if count <= 0:
            return
        name = f"{sweep}/trial-{number}"
        if name.lower() not in lower:
            count -= 1
            yield name
