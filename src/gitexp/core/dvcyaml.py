"""`dvc.yaml` as DVC reads it, without importing DVC: stages with `foreach` and `matrix`
expanded into `name@item` stages, `${...}` templates filled from the item, `vars:` and the
default params file, and what each stage declares (params, outs, metrics, plots, whether an
output is cached).

Only what gitexp needs is interpreted; an expression it cannot fill leaves that path out,
as DVC itself would fail on it.
"""

from __future__ import annotations

import itertools
import posixpath
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from gitexp.core import yamlio
from gitexp.errors import GitexpError

_TEMPLATE = re.compile(r"(?<!\\)\$\{\s*([^}]+?)\s*\}")


@dataclass(frozen=True)
class Output:
    path: str  # relative to the repository root
    cache: bool
    kind: str  # 'outs', 'metrics' or 'plots'


@dataclass
class Pipeline:
    """What a dvc.yaml (at `folder`) declares, templates filled."""

    folder: str
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    top_metrics: list[str] = field(default_factory=list)
    top_plots: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    top_params: list[str] = field(default_factory=list)

    def _base(self, stage: dict[str, Any]) -> str:
        """Where a stage's paths start: dvc.yaml's folder, then its `wdir`."""
        wdir = stage.get("wdir")
        return _join(self.folder, wdir if isinstance(wdir, str) else ".")

    def outputs(self) -> list[Output]:
        found: list[Output] = []
        for stage in self.stages.values():
            base = self._base(stage)
            for kind in ("outs", "metrics", "plots"):
                for path, options in _entries(stage.get(kind)):
                    cache = options.get("cache", True)  # DVC caches all three by default
                    found.append(Output(_join(base, path), bool(cache), kind))
        return found

    def uncached(self) -> set[str]:
        """Outputs with `cache: false`: git keeps them, not DVC."""
        return {o.path for o in self.outputs() if not o.cache}

    def param_files(self) -> list[str]:
        files: list[str] = [_join(self.folder, p) for p in self.top_params]
        for stage in self.stages.values():
            base = self._base(stage)
            for entry in stage.get("params") or []:
                if isinstance(entry, dict):
                    files += [_join(base, str(name)) for name in entry]
                elif isinstance(entry, str):  # a key of the default file in the stage's wdir
                    files.append(_join(base, "params.yaml"))
        return [f for f in dict.fromkeys(files) if f != "params.yaml"]

    def metric_files(self) -> list[str]:
        files = [_join(self.folder, m) for m in self.top_metrics]
        files += [o.path for o in self.outputs() if o.kind == "metrics"]
        return list(dict.fromkeys(files))


def _join(folder: str, path: str) -> str:
    return posixpath.normpath(posixpath.join(folder, path)) if folder else posixpath.normpath(path)


def _entries(items: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, options) of a list like `[a, {b: {cache: false}}]`."""
    for item in items if isinstance(items, list) else []:
        if isinstance(item, str):
            yield item, {}
        elif isinstance(item, dict):
            for path, options in item.items():
                yield str(path), options if isinstance(options, dict) else {}


def parse(data: bytes, path: str, read: Callable[[str], bytes | None]) -> Pipeline:
    """A dvc.yaml's pipeline; `read` gives other files of the same revision (for `vars`
    and the default params file). Raises UsageError for YAML gitexp cannot read."""
    doc = yamlio.load(data, path)
    folder = posixpath.dirname(path)
    pipeline = Pipeline(folder=folder)
    if not isinstance(doc, dict):
        return pipeline
    context = _context(doc, folder, read)
    for name, stage in (doc.get("stages") or {}).items():
        if not isinstance(stage, dict):
            continue
        for full_name, filled in _expand(str(name), stage, context):
            pipeline.stages[full_name] = filled
    pipeline.top_metrics = [p for p, _ in _entries(_fill(doc.get("metrics"), context))]
    pipeline.top_plots = list(_entries(_fill(doc.get("plots"), context)))
    pipeline.top_params = [p for p, _ in _entries(doc.get("params")) if isinstance(p, str)]
    return pipeline


def _context(doc: dict[str, Any], folder: str, read: Callable[[str], bytes | None]) -> dict:
    """Values `${...}` may name: the default params.yaml, then `vars:` entries."""
    context: dict[str, Any] = {}
    declared = doc.get("vars")
    sources: list[Any] = ["params.yaml", *(declared if isinstance(declared, list) else [])]
    for source in sources:
        if isinstance(source, dict):
            context.update(source)
            continue
        if not isinstance(source, str):
            continue
        file, _, keys = source.partition(":")
        data = read(_join(folder, file))
        if data is None:
            continue
        try:
            loaded = (
                yamlio.load(data, file)
                if not file.endswith(".json")
                else yamlio.load_json(data, file)
            )
        except GitexpError:
            continue
        if isinstance(loaded, dict):
            wanted = keys.split(",") if keys else list(loaded)
            context.update({k: loaded[k] for k in wanted if k in loaded})
    return context


def _expand(name: str, stage: dict[str, Any], context: dict[str, Any]):  # noqa: ANN202
    """(name, stage) pairs: one per `foreach` item or `matrix` combination."""
    body = stage.get("do") if "foreach" in stage else stage
    if "foreach" in stage:
        items = _fill(stage["foreach"], context)
        if isinstance(items, dict):
            pairs = [(str(k), {"item": v, "key": k}) for k, v in items.items()]
        elif isinstance(items, list):
            pairs = [(_label(v), {"item": v}) for v in items]
        else:
            return
        for label, extra in pairs:
            yield f"{name}@{label}", _fill(body, {**context, **extra})
    elif "matrix" in stage:
        matrix = _fill(stage["matrix"], context)
        if not isinstance(matrix, dict):
            return
        keys = list(matrix)
        values = [v if isinstance(v, list) else [v] for v in matrix.values()]
        for combo in itertools.product(*values):
            item = dict(zip(keys, combo, strict=True))
            label = "-".join(_label(v) for v in combo)
            rest = {k: v for k, v in stage.items() if k != "matrix"}
            yield f"{name}@{label}", _fill(rest, {**context, "item": item})
    else:
        yield name, _fill(stage, context)


def _label(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _lookup(expression: str, context: Mapping[str, Any]) -> Any:
    value: Any = context
    for part in expression.replace("[", ".").replace("]", "").split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise KeyError(expression)
    return value


def _fill(value: Any, context: Mapping[str, Any]) -> Any:
    """`value` with every `${...}` it holds replaced; a string that names one template whole
    takes the value's own type (as DVC does). Unknown names stay as written."""
    if isinstance(value, dict):
        return {_fill(k, context): _fill(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, context) for v in value]
    if not isinstance(value, str) or "${" not in value:
        return value
    whole = _TEMPLATE.fullmatch(value)
    try:
        if whole:
            return _lookup(whole.group(1), context)
        return _TEMPLATE.sub(lambda m: _label(_lookup(m.group(1), context)), value)
    except KeyError:
        return value
