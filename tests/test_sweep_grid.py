"""The sweep syntax of -S, the grid it spans and the names of its points (pure, no repository)."""

from __future__ import annotations

import pytest

from gitexp.core.names import validate_name
from gitexp.core.params import parse_override
from gitexp.errors import UsageError
from gitexp.sweeps.grid import Axis, Interval, choose_points, parse_axis, parse_grid, point_names

# -S values as users write them (DVC's docs and issues), with what DVC/Hydra make of them.
SWEEPS = {
    "train.lr=0.001,0.01,0.1": ["0.001", "0.01", "0.1"],
    "model.depth=range(2,8,2)": ["2", "4", "6"],
    "model.depth=range(5)": ["0", "1", "2", "3", "4"],
    "opt=choice(adam,sgd)": ["adam", "sgd"],
    "model.layers=choice([128,64],[32])": ["[128,64]", "[32]"],
    "model.layers=[1,2],[3,4]": ["[1,2]", "[3,4]"],
    "lr=1e-05,NaN": ["1e-05", "NaN"],
    "x=-1,-2": ["-1", "-2"],
    "name='a,b',c": ["'a,b'", "c"],
    "+params.yaml:new.key=1, 2": ["1", "2"],
}
SINGLE = [
    "model.layers=[128,64]",
    "train.lr=1e-3",
    "name='a,b'",
    'name="x, y"',
    "m={a: 1, b: 2}",
    "seed=&a [*a]",  # row S4's hostile value: one value (and a YAML error later)
    "empty=",
    "x=foo(1,2)",
    "x=[1,2",  # unbalanced: one value, which YAML refuses with its own message
]


@pytest.mark.parametrize("spec", list(SWEEPS))
def test_sweeps_split_into_the_values_dvc_would_run(spec: str) -> None:
    axis = parse_axis(spec)
    assert isinstance(axis, Axis)
    assert list(axis.literals) == SWEEPS[spec]
    # each element means what it would mean alone after -S KEY=
    for literal in axis.literals:
        parse_override(f"{axis.target}={literal}")


@pytest.mark.parametrize("spec", SINGLE)
def test_lists_quoted_strings_and_odd_values_stay_one_value(spec: str) -> None:
    assert parse_axis(spec) is None


def test_the_rule_matches_hydra_which_dvc_uses() -> None:
    """Which values sweep, and how many runs they make, agree with Hydra's parser (DVC's
    `exp run -S`), wherever Hydra parses the value."""
    parser_module = pytest.importorskip("hydra.core.override_parser.overrides_parser")
    parser = parser_module.OverridesParser.create()
    for spec in [*SWEEPS, *SINGLE]:
        key_value = "k=" + spec.partition("=")[2]
        try:
            override = parser.parse_override(key_value)
        except Exception:  # noqa: BLE001 - Hydra refuses it: nothing to compare
            continue
        axis = parse_axis(key_value)
        assert override.is_sweep_override() == (axis is not None), spec
        if axis is not None:
            assert len(list(override.sweep_string_iterator())) == axis.size, spec


def test_float_ranges_have_clean_values() -> None:
    axis = parse_axis("lr=range(0.1,0.5,0.1)")
    assert isinstance(axis, Axis) and axis.literals == ("0.1", "0.2", "0.3", "0.4")
    assert parse_axis("x=range(3,0,-1)").literals == ("3", "2", "1")  # type: ignore[union-attr]


def test_intervals_are_for_trials() -> None:
    assert parse_axis("lr=tag(log, interval(1e-5, 0.1))") == Interval("lr", "lr", 1e-5, 0.1, True)
    grid = parse_grid(["lr=interval(0,1)"])
    with pytest.raises(UsageError, match="--trials"):
        choose_points(grid, None, None)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("x=range(0,1,0)", "must not be 0"),
        ("x=range(5,1)", "empty"),
        ("x=range(a)", "not a number"),
        ("x=range(0,1e9)", "over"),
        ("x=1,,2", "empty"),
        ("x=glob(*)", "not supported"),
        ("x=interval(2,1)", "low < high"),
        ("x=tag(log, interval(0,1))", "low > 0"),
    ],
)
def test_bad_sweeps_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_axis(spec)


def test_the_grid_is_the_product_in_the_order_given() -> None:
    grid = parse_grid(["a=1,2,3", "seed=7", "b=x,y"])
    points = choose_points(grid, None, None)
    assert len(points) == grid.size == 6
    assert points[0] == {"a": "1", "b": "x"} and points[-1] == {"a": "3", "b": "y"}
    assert grid.overrides(points[1]) == ("a=1", "seed=7", "b=y")
    with pytest.raises(UsageError, match="swept twice"):
        parse_grid(["a=1,2", "a=3,4"])


def test_random_samples_are_distinct_and_seeded() -> None:
    grid = parse_grid(["a=range(100)", "b=range(100)"])
    first = choose_points(grid, 20, seed=5)
    assert first == choose_points(grid, 20, seed=5)
    assert len({tuple(p.values()) for p in first}) == 20
    assert first != choose_points(grid, 20, seed=6)
    assert len(choose_points(parse_grid(["a=1,2"]), 10, seed=1)) == 2
    huge = parse_grid(["a=range(10000)", "b=range(10000)"])
    assert len(choose_points(huge, 3, seed=1)) == 3  # a 10^8 grid is never listed whole
    with pytest.raises(UsageError, match="--random"):
        choose_points(huge, None, None)


def test_names_come_from_the_values() -> None:
    grid = parse_grid(["train.lr=0.01,0.1", "model.depth=range(2,6,2)"])
    names = point_names("sweep", grid, choose_points(grid, None, None))
    assert names == [
        "sweep/lr-0.01-depth-2",
        "sweep/lr-0.01-depth-4",
        "sweep/lr-0.1-depth-2",
        "sweep/lr-0.1-depth-4",
    ]


def test_names_of_hostile_values_are_valid_unique_and_stable() -> None:
    values = ["'a b'", "a_b", "[128, 64]", "{x: 1}", "../etc", "-1", "NaN", "x.lock", "A", "a",
              "'$(touch pwn)'", "'\u202eevil'", "'" + "v" * 300 + "'"]  # fmt: skip
    grid = parse_grid([f"model.opt.name=choice({', '.join(values)})", "optim.name=1,2"])
    points = choose_points(grid, None, None)
    names = point_names("s", grid, points)
    assert len({n.lower() for n in names}) == len(names) == 2 * len(values)
    for name in names:
        assert validate_name(name) == name and len(name.encode()) <= 100
    assert names == point_names("s", grid, points)  # a rerun finds the same runs
    assert names[0].startswith("s/opt.name-a_b-optim.name-1")  # two keys named 'name'
