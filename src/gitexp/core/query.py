"""The small expression language of `show --filter` (and of report budgets).

    acc > 0.9 and train.lr <= 0.1
    status == 'failed' or (loss < 0.3 and not epochs == 10)
    acc >= base.acc - 0.005

Keys are dotted names, `file:key` where a key is ambiguous, or any name in backticks.
It is parsed by a small recursive-descent parser and evaluated over plain values: never by
Python's eval. A missing value or a comparison of a number with a string is simply false.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gitexp.core.metrics import is_number
from gitexp.errors import UsageError

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
    | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<quoted>`[^`]+`)
    | (?P<op>==|!=|<=|>=|<|>|\(|\)|\+|-|\*|/)
    | (?P<key>[A-Za-z_][A-Za-z0-9_.:/]*)
    )""",
    re.VERBOSE,
)
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}
_WORDS = {"true": True, "false": False, "null": None, "none": None}
MAX_DEPTH = 50  # nesting of parentheses, `not`, signs and operator chains (row S4)


@dataclass(frozen=True)
class Node:
    kind: str  # 'const', 'key', 'not', 'and', 'or', 'cmp', 'arith', 'neg'
    value: Any = None
    args: tuple[Node, ...] = ()


def parse_filter(text: str) -> Node:
    tokens = _tokenize(text)
    parser = _Parser(text, tokens)
    node = parser.parse_or()
    if parser.pos != len(tokens):
        raise parser.error(f"unexpected '{tokens[parser.pos][1]}'")
    if _height(node) > MAX_DEPTH:
        raise parser.error(f"it nests more than {MAX_DEPTH} levels")
    return node


def _height(root: Node) -> int:
    """How deep the tree is (evaluation recurses this deep), without recursing."""
    best, stack = 0, [(root, 1)]
    while stack:
        node, depth = stack.pop()
        best = max(best, depth)
        stack.extend((arg, depth + 1) for arg in node.args)
    return best


def keys_of(node: Node) -> set[str]:
    if node.kind == "key":
        return {node.value}
    found: set[str] = set()
    for arg in node.args:
        found |= keys_of(arg)
    return found


def evaluate(node: Node, lookup: Callable[[str], Any]) -> Any:
    kind = node.kind
    if kind == "const":
        return node.value
    if kind == "key":
        return lookup(node.value)
    if kind == "not":
        return not evaluate(node.args[0], lookup)
    if kind == "and":
        return all(evaluate(arg, lookup) for arg in node.args)
    if kind == "or":
        return any(evaluate(arg, lookup) for arg in node.args)
    if kind == "neg":
        value = evaluate(node.args[0], lookup)
        return -value if is_number(value) else None
    left, right = (evaluate(arg, lookup) for arg in node.args)
    if kind == "arith":
        if not (is_number(left) and is_number(right)):
            return None
        try:
            return _ARITH[node.value](left, right)
        except (ZeroDivisionError, OverflowError):
            return math.nan
    # 'cmp': only like with like; missing values and NaN never match, even with !=.
    if left is None or right is None or _nan(left) or _nan(right):
        return False
    if is_number(left) != is_number(right):
        return False
    try:
        return bool(_COMPARE[node.value](left, right))
    except TypeError:
        return False


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            shown = text[pos:].strip()[:20]
            raise UsageError(f"invalid filter '{_shorten(text)}': cannot read '{shown}'")
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Parser:
    def __init__(self, text: str, tokens: list[tuple[str, str]]) -> None:
        self.text = text
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def error(self, reason: str) -> UsageError:
        return UsageError(
            f"invalid filter '{_shorten(self.text)}': {reason} "
            '(write comparisons like "acc > 0.9 and train.lr <= 0.1")'
        )

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take_word(self, word: str) -> bool:
        tok = self.peek()
        if tok and tok[0] == "key" and tok[1].lower() == word:
            self.pos += 1
            return True
        return False

    def take_op(self, *ops: str) -> str | None:
        tok = self.peek()
        if tok and tok[0] == "op" and tok[1] in ops:
            self.pos += 1
            return tok[1]
        return None

    def parse_or(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:  # checked while parsing too: the parser itself recurses
            raise self.error(f"it nests more than {MAX_DEPTH} levels")
        try:
            return self._parse_or()
        finally:
            self.depth -= 1

    def _parse_or(self) -> Node:
        args = [self.parse_and()]
        while self.take_word("or"):
            args.append(self.parse_and())
        return args[0] if len(args) == 1 else Node("or", args=tuple(args))

    def parse_and(self) -> Node:
        args = [self.parse_not()]
        while self.take_word("and"):
            args.append(self.parse_not())
        return args[0] if len(args) == 1 else Node("and", args=tuple(args))

    def parse_not(self) -> Node:
        nots = 0
        while self.take_word("not"):
            nots += 1
        node = self.parse_compare()
        for _ in range(nots):
            node = Node("not", args=(node,))
        return node

    def parse_compare(self) -> Node:
        left = self.parse_sum()
        op = self.take_op(*_COMPARE)
        if op is None:
            return left
        return Node("cmp", op, (left, self.parse_sum()))

    def parse_sum(self) -> Node:
        node = self.parse_term()
        while op := self.take_op("+", "-"):
            node = Node("arith", op, (node, self.parse_term()))
        return node

    def parse_term(self) -> Node:
        node = self.parse_unary()
        while op := self.take_op("*", "/"):
            node = Node("arith", op, (node, self.parse_unary()))
        return node

    def parse_unary(self) -> Node:
        signs = 0
        while self.take_op("-"):
            signs += 1
        node = self.parse_atom()
        for _ in range(signs):
            node = Node("neg", args=(node,))
        return node

    def parse_atom(self) -> Node:
        tok = self.peek()
        if tok is None:
            raise self.error("it ends too early")
        kind, text = tok
        self.pos += 1
        if kind == "number":
            return Node("const", float(text) if any(c in text for c in ".eE") else int(text))
        if kind == "string":
            return Node("const", re.sub(r"\\(.)", r"\1", text[1:-1]))
        if kind == "quoted":
            return Node("key", text[1:-1])
        if kind == "key":
            if text.lower() in ("and", "or", "not"):
                raise self.error(f"'{text}' needs a comparison on each side")
            if text.lower() in _WORDS:
                return Node("const", _WORDS[text.lower()])
            return Node("key", text)
        if text == "(":
            node = self.parse_or()
            if not self.take_op(")"):
                raise self.error("a '(' is not closed")
            return node
        raise self.error(f"unexpected '{text}'")
