"""Strict, predictable YAML: a YAML 1.2 core schema on top of PyYAML's safe loader.

PyYAML follows YAML 1.1, where `1e-3` is a string, `NO` is false, `1:20` is 80 and `0777` is
511; and it keeps the last of two duplicate keys without a word. gitexp reads params and
metrics with the 1.2 core schema instead (RELIABILITY rule 7, rows P2 to P5):
- booleans are only true/false (any case form YAML 1.2 allows); `on`, `NO`, `y` stay strings;
- `1e-3` is a float, `0777` is the integer 777, `0o17` and `0x1f` are octal and hex;
- dates stay strings; `!!python/...` tags are refused (safe constructor);
- a duplicate key is an error that names both lines.

Every YAML and JSON document gitexp reads comes through here, so the limits on untrusted input
are set once (row S3, S4): a size cap before parsing, and before construction a walk of the
node graph that caps nesting, refuses recursive aliases and caps how far aliases expand (the
way billion-laughs protections cap amplification), so a 300-byte alias bomb fails in
milliseconds instead of filling memory.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

import yaml

from gitexp.errors import UsageError

_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")

# Documents bigger than this are refused before parsing (runaway outputs).
MAX_YAML_BYTES = 10 * 1024 * 1024
# Nesting deeper than this is refused: real params, metrics and DVC files nest under 10.
MAX_DEPTH = 100
# Aliases may repeat a value, but the document they expand to stays bounded: at most this
# many values in all, and at most this many times the values actually written.
MAX_EXPANDED = 1_000_000
MAX_AMPLIFICATION = 100


class CoreResolver(yaml.resolver.BaseResolver):
    """Resolves plain scalars by the YAML 1.2 core schema."""


for _tag, _regexp, _first in (
    ("tag:yaml.org,2002:bool", _BOOL, list("tTfF")),
    ("tag:yaml.org,2002:int", _INT, list("-+0123456789")),
    ("tag:yaml.org,2002:float", _FLOAT, list("-+.0123456789")),
    ("tag:yaml.org,2002:null", _NULL, ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:merge", re.compile(r"^<<$"), ["<"]),
):
    CoreResolver.add_implicit_resolver(_tag, _regexp, _first)


class StrictConstructor(yaml.constructor.SafeConstructor):
    """The safe constructor, with 1.2 numbers and an error on duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark
                ) from None
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key '{key}' (first at line {first.start_mark.line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        value = str(self.construct_scalar(node))
        return int(value, 0) if value.startswith(("0o", "0x")) else int(value, 10)

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        value = str(self.construct_scalar(node)).lower()
        if value.lstrip("+-") == ".inf":
            return -math.inf if value.startswith("-") else math.inf
        if value == ".nan":
            return math.nan
        return float(value)


StrictConstructor.add_constructor("tag:yaml.org,2002:int", StrictConstructor.construct_yaml_int)
StrictConstructor.add_constructor("tag:yaml.org,2002:float", StrictConstructor.construct_yaml_float)
# Timestamps are only resolved when tagged explicitly; keep even those as strings.
StrictConstructor.add_constructor(
    "tag:yaml.org,2002:timestamp", yaml.constructor.SafeConstructor.construct_yaml_str
)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def check_graph(root: yaml.Node, path: str) -> None:
    """Refuses a node graph that nests too deeply, refers to itself, or expands (through
    aliases) far beyond what is written. Iterative, so no input can exhaust the stack."""
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            kids = _children(node)
            size[key] = min(1 + sum(size[id(k)] for k in kids), MAX_EXPANDED + 1)
            height[key] = 1 + max((height[id(k)] for k in kids), default=0)
            if height[key] > MAX_DEPTH:
                raise UsageError(f"{path}: nested more than {MAX_DEPTH} levels deep (the limit)")
            continue
        if key in size:
            continue
        if key in on_path:
            raise UsageError(f"{path}: an alias refers to a value that contains it")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((kid, False) for kid in _children(node) if id(kid) not in size)
    expanded = size[id(root)]
    limit = min(MAX_EXPANDED, MAX_AMPLIFICATION * len(size) + 10_000)
    if expanded > limit:
        raise UsageError(
            f"{path}: aliases expand its {len(size):,} values to more than {limit:,} (the "
            f"limit is {MAX_AMPLIFICATION}x what is written); refusing to read it"
        )


class StrictLoader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser,
                   yaml.composer.Composer, StrictConstructor, CoreResolver):  # fmt: skip
    """Pure-Python loader: its marks index characters, which the override editor needs."""

    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        StrictConstructor.__init__(self)
        CoreResolver.__init__(self)
        self.source_path = "<yaml>"

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        check_graph(node, self.source_path)
        return self.construct_document(node)


if hasattr(yaml, "CParser"):

    class FastLoader(yaml.CParser, StrictConstructor, CoreResolver):  # type: ignore[misc]
        """libyaml's parser with the strict constructor and resolver."""

        def __init__(self, stream: str) -> None:
            yaml.CParser.__init__(self, stream)
            StrictConstructor.__init__(self)
            CoreResolver.__init__(self)
            self.source_path = "<yaml>"

        get_single_data = StrictLoader.get_single_data

else:  # pragma: no cover - PyYAML built without libyaml
    FastLoader = StrictLoader  # type: ignore[misc,assignment]


def decode(data: bytes, path: str) -> str:
    """UTF-8 text, or an error naming the file, line and column of the bad byte."""
    if len(data) > MAX_YAML_BYTES:
        raise UsageError(
            f"{path}: too large to read ({len(data):,} bytes; the limit is {MAX_YAML_BYTES:,})"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise UsageError(f"{path}:{line}:{col}: not valid UTF-8 text") from None


def load(data: bytes | str, path: str) -> Any:
    """Parse one YAML document strictly; errors name the file, line and column."""
    text = decode(data, path) if isinstance(data, bytes) else data
    if len(text) > MAX_YAML_BYTES:
        raise UsageError(f"{path}: too large to read ({len(text):,} characters)")
    with _one_line_errors(path):
        loader = FastLoader(text)
        try:
            loader.source_path = path
            return loader.get_single_data()
        finally:
            loader.dispose()


@contextlib.contextmanager
def _one_line_errors(path: str) -> Iterator[None]:
    """PyYAML's errors as one line naming the file, line and column."""
    try:
        yield
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = exc.problem or exc.context or "invalid YAML"
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        raise UsageError(f"{where}: {reason}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: {exc}".splitlines()[0]) from None
    except RecursionError:
        raise UsageError(f"{path}: nested more than {MAX_DEPTH} levels deep (the limit)") from None


def load_json(
    data: bytes | str, path: str, pairs: Callable[[list[tuple[str, Any]]], Any] | None = None
) -> Any:
    """JSON with the same limits as YAML: size first, then nesting (json has no cap of its
    own, and deeply nested values break every recursive consumer later)."""
    text = decode(data, path) if isinstance(data, bytes) else data
    if len(text) > MAX_YAML_BYTES:
        raise UsageError(f"{path}: too large to read ({len(text):,} characters)")
    try:
        doc = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}:{exc.lineno}:{exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise UsageError(f"{path}: nested more than {MAX_DEPTH} levels deep (the limit)") from None
    check_depth(doc, path)
    return doc


def check_depth(doc: Any, path: str) -> None:
    """Refuses parsed data (JSON, TOML) nested deeper than MAX_DEPTH, without recursion."""
    stack = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise UsageError(f"{path}: nested more than {MAX_DEPTH} levels deep (the limit)")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def compose(text: str, path: str) -> yaml.Node | None:
    """The node tree of a document, with character-indexed marks."""
    with _one_line_errors(path):
        loader = StrictLoader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    if node is not None:
        check_graph(node, path)
    return node


def dump_inline(value: Any) -> str:
    """A value as a one-line YAML fragment (flow style for lists and mappings)."""
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else ("-.inf" if value < 0 else ".inf")
    text = yaml.safe_dump(value, default_flow_style=True, width=math.inf, sort_keys=False)
    text = text.strip()
    return text.removesuffix("\n...").removesuffix("...").strip()
