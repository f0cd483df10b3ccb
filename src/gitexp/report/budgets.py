"""Budgets (`--check EXPR`): evaluated against the head and the base, each a row with the
values compared and the margin. A budget that names a value one side lacks fails; only an
expression that cannot be parsed is an error."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gitexp.core.metrics import is_number
from gitexp.core.query import Node, evaluate, keys_of, parse_filter
from gitexp.store.snapshot import State


@dataclass(frozen=True)
class Budget:
    expression: str
    passed: bool
    values: tuple[tuple[str, Any], ...]  # (key, value) for each key the expression reads
    margin: float | None  # how far from failing (positive) or past it (negative)
    reason: str | None = None  # why it failed without a comparison


def _values(state: State) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for kind in (state.params, state.metrics):
        for path, values in kind.items():
            for key, value in values.items():
                merged.setdefault(key, value)
                merged[f"{path}:{key}"] = value
    return merged


def evaluate_budget(expression: str, base: State, head: State) -> Budget:
    """Raises UsageError only for an expression that does not parse."""
    tree = parse_filter(expression)
    head_values, base_values = _values(head), _values(base)

    def lookup(key: str) -> Any:
        if key.startswith("base."):
            return base_values.get(key[5:])
        return head_values.get(key)

    keys = sorted(keys_of(tree))
    values = tuple((key, lookup(key)) for key in keys)
    missing = [
        key
        for key in keys
        if (key[5:] not in base_values if key.startswith("base.") else key not in head_values)
    ]
    if missing:
        sides = ", ".join(
            f"the base has no {k[5:]}" if k.startswith("base.") else f"the head has no {k}"
            for k in missing
        )
        return Budget(expression, False, values, None, sides)
    passed = bool(evaluate(tree, lookup))
    return Budget(expression, passed, values, _margin(tree, lookup))


def _margin(tree: Node, lookup: Any) -> float | None:
    """For `a >= b` and friends: a - b (or b - a), so a positive margin is room to spare."""
    if tree.kind != "cmp" or tree.value not in (">", ">=", "<", "<="):
        return None
    left, right = (evaluate(arg, lookup) for arg in tree.args)
    if not (is_number(left) and is_number(right)):
        return None
    margin = left - right if tree.value in (">", ">=") else right - left
    if isinstance(margin, float):
        if not math.isfinite(margin):
            return None
        margin = float(f"{margin:.12g}")
    return margin
