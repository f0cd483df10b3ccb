"""MLflow's search grammar over runs: `filter_string` and `order_by`.

    metrics.acc > 0.9 AND params.model = 'rf' AND tags.`team name` LIKE 'vis%'
    attributes.status = 'FINISHED' AND run_name IN ('a', 'b')

Clauses are joined by AND (as in MLflow); comparisons are `=`, `!=`, `<`, `<=`, `>`, `>=`,
`LIKE`, `ILIKE`, `IN` and `NOT IN`; `==` is read as `=`. Keys take MLflow's prefixes
(`metrics.`, `params.`, `tags.`, `attributes.` and their singular forms); a key without a
prefix is an attribute if MLflow has one of that name, else a metric, param or tag. Parsed by
a tokenizer and evaluated over plain values, never by eval.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gitexp.errors import UsageError

ATTRIBUTES = {
    "run_id",
    "run_name",
    "status",
    "start_time",
    "end_time",
    "user_id",
    "artifact_uri",
    "experiment_id",
    "lifecycle_stage",
    "created",
    "created_at",
    "name",
}
_PREFIXES = {
    "metrics": "metrics",
    "metric": "metrics",
    "params": "params",
    "param": "params",
    "parameters": "params",
    "parameter": "params",
    "tags": "tags",
    "tag": "tags",
    "attributes": "attributes",
    "attribute": "attributes",
    "attr": "attributes",
    "run": "attributes",
}
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
    | (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.)*")
    | (?P<quoted>`[^`]+`)
    | (?P<op>==|!=|<>|<=|>=|=|<|>|\(|\)|,)
    | (?P<word>[A-Za-z_][A-Za-z0-9_.:/\-]*)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Key:
    kind: str  # 'metrics', 'params', 'tags', 'attributes' or '' (to be found)
    name: str


@dataclass(frozen=True)
class Clause:
    key: Key
    op: str  # '=', '!=', '<', '<=', '>', '>=', 'LIKE', 'ILIKE', 'IN', 'NOT IN'
    value: Any


def _split_key(text: str) -> Key:
    prefix, dot, rest = text.partition(".")
    if dot and prefix.lower() in _PREFIXES:
        name = rest
        if len(name) >= 2 and name[0] == name[-1] and name[0] in "`\"'":
            name = name[1:-1]
        return Key(_PREFIXES[prefix.lower()], name)
    return Key("", text)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text) and text[pos:].strip():
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise _error(text, f"cannot read '{text[pos:].strip()[:20]}'")
        kind = match.lastgroup
        assert kind is not None
        value = match.group(kind)
        # A prefix followed by a quoted name: metrics.`my metric` or tags."a b"
        if kind == "word" and value.endswith(".") and match.end() < len(text):
            quoted = re.match(r"`[^`]+`|\"[^\"]+\"", text[match.end() :])
            if quoted:
                value += quoted.group(0)
                tokens.append(("word", value))
                pos = match.end() + quoted.end()
                continue
        tokens.append((kind, value))
        pos = match.end()
    return tokens


def _error(text: str, reason: str) -> UsageError:
    return UsageError(
        f"invalid filter '{text}': {reason} (MLflow's grammar: "
        "\"metrics.acc > 0.9 AND params.model = 'rf'\")"
    )


def _literal(text: str, token: tuple[str, str]) -> Any:
    kind, value = token
    if kind == "number":
        return float(value) if any(c in value for c in ".eE") else int(value)
    if kind == "string":
        body = value[1:-1]
        return body.replace("''", "'") if value[0] == "'" else body
    raise _error(text, f"expected a value, found '{value}'")


def parse(text: str | None) -> list[Clause]:
    """The clauses of a filter; an empty filter has none."""
    if not text or not text.strip():
        return []
    tokens = _tokens(text)
    clauses: list[Clause] = []
    pos = 0

    def take() -> tuple[str, str]:
        nonlocal pos
        if pos >= len(tokens):
            raise _error(text, "it ends too early")
        pos += 1
        return tokens[pos - 1]

    while True:
        kind, value = take()
        if kind == "quoted":
            key = Key("", value[1:-1])
        elif kind == "word" and value.upper() not in ("AND", "OR", "NOT", "IN", "LIKE", "ILIKE"):
            key = _split_key(value)
        else:
            raise _error(text, f"expected a key such as metrics.acc, found '{value}'")
        kind, value = take()
        op = value.upper() if kind == "word" else value
        if op == "NOT":
            kind, value = take()
            if value.upper() != "IN":
                raise _error(text, "NOT must be followed by IN")
            op = "NOT IN"
        op = {"==": "=", "<>": "!="}.get(op, op)
        if op not in ("=", "!=", "<", "<=", ">", ">=", "LIKE", "ILIKE", "IN", "NOT IN"):
            raise _error(text, f"unknown comparison '{value}'")
        if op in ("IN", "NOT IN"):
            if take() != ("op", "("):
                raise _error(text, f"{op} takes a list in parentheses: IN ('a', 'b')")
            values = []
            while True:
                values.append(_literal(text, take()))
                sep = take()
                if sep == ("op", ")"):
                    break
                if sep != ("op", ","):
                    raise _error(text, "values in a list are separated by ','")
            clauses.append(Clause(key, op, tuple(values)))
        else:
            clauses.append(Clause(key, op, _literal(text, take())))
        if pos == len(tokens):
            return clauses
        kind, value = take()
        if value.upper() == "OR":
            raise _error(text, "MLflow's grammar has no OR: run one search per alternative")
        if value.upper() != "AND":
            raise _error(text, f"expected AND, found '{value}'")


def _like(pattern: str, flags: int = 0) -> re.Pattern[str]:
    parts = []
    for char in pattern:
        parts.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
    return re.compile("^" + "".join(parts) + "$", flags | re.DOTALL)


def _compare(op: str, left: Any, right: Any) -> bool:
    if left is None:  # a run without the key matches no comparison, as in MLflow
        return False
    if op in ("IN", "NOT IN"):
        inside = any(_equal(left, v) for v in right)
        return inside if op == "IN" else not inside
    if op in ("LIKE", "ILIKE"):
        if not isinstance(right, str):
            return False
        return bool(_like(right, re.IGNORECASE if op == "ILIKE" else 0).match(str(left)))
    if op == "=":
        return _equal(left, right)
    if op == "!=":
        return not _equal(left, right)
    if isinstance(left, str) and isinstance(right, (int, float)):
        try:  # a param is a string in MLflow; `params.lr > 0.01` compares it as a number
            left = float(left)
        except ValueError:
            return False
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        if isinstance(left, float) and math.isnan(left):
            return False
    elif isinstance(left, str) and isinstance(right, str):
        pass
    else:
        return False
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]


def _equal(left: Any, right: Any) -> bool:
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return float(left) == float(right)
    return str(left) == str(right)


Lookup = Callable[[Key], Any]


def matches(clauses: Sequence[Clause], lookup: Lookup) -> bool:
    return all(_compare(c.op, lookup(c.key), c.value) for c in clauses)


def parse_order_by(order_by: str | Sequence[str] | None) -> list[tuple[Key, bool]]:
    """MLflow's ["metrics.acc DESC", "start_time"]: (key, descending) pairs."""
    if not order_by:
        return []
    items = [order_by] if isinstance(order_by, str) else list(order_by)
    found = []
    for item in items:
        text = item.strip()
        descending = False
        upper = text.upper()
        if upper.endswith(" DESC"):
            text, descending = text[:-5].strip(), True
        elif upper.endswith(" ASC"):
            text = text[:-4].strip()
        if not text:
            raise UsageError(f"invalid order_by {item!r}: write a key such as 'metrics.acc DESC'")
        if text.startswith("`") and text.endswith("`"):
            text = text[1:-1]
        found.append((_split_key(text), descending))
    return found


def sort_value(value: Any) -> tuple[int, Any]:
    """Missing values and NaN sort last in either direction; numbers before strings."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return (2, 0)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value))
