"""Params files: parse, flatten to dotted keys, and apply `-S` overrides.

Overrides edit the text of a YAML file in place (by the parser's marks), so comments, key
order and quoting of everything else stay as the user wrote them (row P8).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import yaml

from gitexp.core import yamlio
from gitexp.errors import UsageError

DEFAULT_PARAMS_FILE = "params.yaml"
# A flattened document larger than this is refused (alias bombs expand when flattened).
MAX_KEYS = 100_000

Flat = dict[str, Any]


def parse_document(data: bytes, path: str) -> Any:
    """A params or metrics document, by its file extension."""
    suffix = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if suffix in ("json",):
        return yamlio.load_json(data, path, _unique_pairs(path))
    if suffix == "toml":
        try:
            import tomllib
        except ImportError:  # pragma: no cover - Python 3.10
            raise UsageError(f"{path}: reading TOML needs Python 3.11 or newer") from None
        try:
            doc = tomllib.loads(yamlio.decode(data, path))
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"{path}: {exc}") from None
        except RecursionError:
            raise UsageError(f"{path}: nested too deeply") from None
        yamlio.check_depth(doc, path)
        return doc
    return yamlio.load(data, path)


def _unique_pairs(path: str):  # noqa: ANN202 - a json hook
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise UsageError(f"{path}: duplicate key '{key}'")
            result[key] = value
        return result

    return hook


def load_params(data: bytes, path: str) -> Flat:
    """A params file as a flat mapping of dotted keys; the top level must be a mapping."""
    doc = parse_document(data, path)
    if not isinstance(doc, dict):
        what = "empty" if doc is None else f"a {type(doc).__name__}"
        raise UsageError(f"{path}:1:1: params must be a mapping of names to values, not {what}")
    return flatten(doc, path)


def flatten(doc: dict[Any, Any], path: str = "") -> Flat:
    """{'train': {'lr': 0.1}} -> {'train.lr': 0.1}; lists stay values."""
    flat: Flat = {}
    stack: list[tuple[str, Any]] = [("", doc)]
    while stack:
        prefix, node = stack.pop()
        if isinstance(node, dict) and (node or not prefix):
            for key, value in reversed(list(node.items())):
                stack.append((f"{prefix}{key}" if not prefix else f"{prefix}.{key}", value))
            continue
        flat[prefix] = node
        if len(flat) > MAX_KEYS:
            raise UsageError(f"{path}: more than {MAX_KEYS} keys; refusing to read it")
    return flat  # the stack visits keys in document order


# --- overrides --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Override:
    """One `-S [+][FILE:]KEY=VALUE`."""

    file: str
    key: str
    value: Any
    literal: str  # the value as typed, kept in the file when it reads back the same
    add: bool  # '+KEY': the key may be new


def parse_override(spec: str, default_file: str = DEFAULT_PARAMS_FILE) -> Override:
    left, eq, literal = spec.partition("=")
    if not eq:
        raise UsageError(f"invalid override '{spec}': write KEY=VALUE, e.g. -S train.lr=0.1")
    add = left.startswith("+")
    left = left.removeprefix("+")
    file, colon, key = left.rpartition(":")
    if not colon:
        file = default_file
    if key.startswith("+"):
        add, key = True, key[1:]
    if not key or any(not part for part in key.split(".")):
        raise UsageError(f"invalid override '{spec}': the key is empty or has an empty part")
    parts = file.split("/")
    if not file or file.startswith(("/", "-")) or ".." in parts:
        raise UsageError(f"invalid override '{spec}': '{file}' is not a params file in the repo")
    if any(p.lower() == ".git" for p in parts) or parts[0].lower() in (".gitexp", ".dvc"):
        raise UsageError(f"invalid override '{spec}': '{file}' belongs to git, DVC or gitexp")
    value = yamlio.load(literal, f"-S {spec}") if literal.strip() else ""
    return Override(file=file, key=key, value=value, literal=literal, add=add)


def apply_overrides(data: bytes, path: str, overrides: list[Override]) -> bytes:
    """The file's bytes with the overrides applied, or an error naming what is wrong."""
    if path.lower().endswith(".json"):
        return _apply_json(data, path, overrides)
    if path.lower().endswith(".toml"):
        raise UsageError(f"{path}: overriding TOML params is not supported; use YAML or JSON")
    text = yamlio.decode(data, path)
    expected = load_params(data, path) if text.strip() else {}
    for override in overrides:
        text = _edit_yaml(text, path, override)
        _set_flat(expected, override, path)
    result = text.encode()
    if load_params(result, path) != expected:  # pragma: no cover - an editor bug
        raise UsageError(f"{path}: could not apply the overrides safely; the file was not changed")
    return result


def _set_flat(flat: Flat, override: Override, path: str) -> None:
    prefix = override.key + "."
    parents = {".".join(override.key.split(".")[:i]) for i in range(1, override.key.count(".") + 1)}
    for key in [k for k in flat if k.startswith(prefix) or k == override.key or k in parents]:
        del flat[key]  # the key, what was under it, and an empty mapping it now goes into
    if isinstance(override.value, dict) and override.value:  # an empty one is a value: {}
        for key, value in flatten(override.value, path).items():
            flat[f"{override.key}.{key}" if key else override.key] = value
    else:
        flat[override.key] = override.value


def _missing(path: str, override: Override, where: str) -> UsageError:
    return UsageError(
        f"key '{override.key}' does not exist in {path}{where}; "
        f"to add it, write -S +{override.key}={override.literal}"
    )


def _value_text(override: Override) -> str:
    """The text written for a value: as the user typed it when YAML 1.1 readers (PyYAML's
    safe_load, which most training scripts use) and 1.2 readers both read it as the same
    value; otherwise a canonical form they agree on (`1e-3` is written `0.001`)."""
    literal = override.literal.strip()
    simple = literal and "#" not in literal and "\n" not in literal
    if simple and not isinstance(override.value, (dict, list)):
        try:
            if _same(yamlio.load(literal, "-S"), override.value) and _same(
                yaml.safe_load(literal), override.value
            ):
                return literal
        except (UsageError, yaml.YAMLError):
            pass
    return yamlio.dump_inline(override.value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def _node_end(node: yaml.Node) -> int:
    """Where a node's own text ends (block collections end at their last child)."""
    if isinstance(node, yaml.ScalarNode) or getattr(node, "flow_style", False):
        return node.end_mark.index
    if isinstance(node, yaml.MappingNode) and node.value:
        return _node_end(node.value[-1][1])
    if isinstance(node, yaml.SequenceNode) and node.value:
        return _node_end(node.value[-1])
    return node.end_mark.index


def _edit_yaml(text: str, path: str, override: Override) -> str:
    root = yamlio.compose(text, path) if text.strip() else None
    if root is None:
        root_text = "" if not text or text.endswith("\n") else "\n"
        return text + root_text + _block(override.key.split("."), _value_text(override), 0)
    if not isinstance(root, yaml.MappingNode):
        raise UsageError(f"{path}:1:1: params must be a mapping of names to values")
    parts = override.key.split(".")
    node = root
    for depth, part in enumerate(parts):
        key, match = next(
            ((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part),
            (None, None),
        )
        if match is None or key is None:
            if not override.add:
                raise _missing(path, override, "")
            return _insert(text, node, parts[depth:], _value_text(override))
        if depth == len(parts) - 1:
            start, end = match.start_mark.index, _node_end(match)
            block = not isinstance(match, yaml.ScalarNode) and not match.flow_style
            if block and match.start_mark.column <= key.start_mark.column:
                # a block list at its key's indent (`metrics:` then `- acc`, as PyYAML and
                # DVC write it): the new value goes on the key's line instead
                start = text.index(":", key.end_mark.index) + 1
                return f"{text[:start]} {_value_text(override)}{text[end:]}"
            if start == end:  # an empty value such as 'key:' at the end of a line
                return f"{text[:start]} {_value_text(override)}{text[end:]}"
            return text[:start] + _value_text(override) + text[end:]
        if not isinstance(match, yaml.MappingNode):
            parent = ".".join(parts[: depth + 1])
            raise UsageError(
                f"cannot set '{override.key}' in {path}: '{parent}' is a value, not a mapping"
            )
        node = match
    raise AssertionError("unreachable")


def _block(parts: list[str], value: str, indent: int) -> str:
    lines = []
    for i, part in enumerate(parts):
        key = yamlio.dump_inline(part)
        pad = " " * (indent + 2 * i)
        lines.append(f"{pad}{key}:" + (f" {value}" if i == len(parts) - 1 else ""))
    return "\n".join(lines) + "\n"


def _insert(text: str, mapping: yaml.MappingNode, parts: list[str], value: str) -> str:
    if mapping.flow_style or not mapping.value:
        close = mapping.end_mark.index - 1  # the position of '}'
        nested = value
        for part in reversed(parts[1:]):
            nested = f"{{{yamlio.dump_inline(part)}: {nested}}}"
        sep = ", " if mapping.value else ""
        return f"{text[:close]}{sep}{yamlio.dump_inline(parts[0])}: {nested}{text[close:]}"
    indent = mapping.value[0][0].start_mark.column
    end = _node_end(mapping)
    line_end = text.find("\n", end)
    if line_end == -1:
        text, line_end = text + "\n", len(text)
    return text[: line_end + 1] + _block(parts, value, indent) + text[line_end + 1 :]


def _apply_json(data: bytes, path: str, overrides: list[Override]) -> bytes:
    doc = parse_document(data, path) if data.strip() else {}
    if not isinstance(doc, dict):
        raise UsageError(f"{path}:1:1: params must be a mapping of names to values")
    for override in overrides:
        node = doc
        parts = override.key.split(".")
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None and override.add:
                child = node[part] = {}
            elif child is None:
                raise _missing(path, override, "")
            if not isinstance(child, dict):
                parent = ".".join(parts[: depth + 1])
                raise UsageError(
                    f"cannot set '{override.key}' in {path}: '{parent}' is a value, not a mapping"
                )
            node = child
        if parts[-1] not in node and not override.add:
            raise _missing(path, override, "")
        node[parts[-1]] = override.value
    return (json.dumps(doc, indent=2) + "\n").encode()
