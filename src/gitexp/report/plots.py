"""Plot definitions as DVC and DVCLive declare them, and their data, read from revisions.

- `dvc.yaml`, top level `plots:` (DVC 3's list of paths or ids with `x`/`y`/`template`/
  `title`, a mapping in older files) and each stage's `plots:` (outputs with properties);
  DVCLive's own `dvclive/dvc.yaml` too. Paths are relative to the dvc.yaml that names them;
  a directory means every file in it.
- With nothing declared: DVCLive's files (`dvclive/plots/metrics/**.tsv` with x `step`,
  `dvclive/plots/sklearn/*.json` with the fields DVCLive writes, `dvclive/plots/images/*`)
  and per-step files under `history/`.

Pure functions over file listings and bytes; `gitexp.report.gather` reads the revisions. The UI
reads plots through this module too.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gitexp.core import dvcyaml, yamlio
from gitexp.errors import GitexpError

TABLE_SUFFIXES = (".tsv", ".csv", ".json", ".yaml", ".yml")
IMAGE_SUFFIXES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                  ".gif": "image/gif", ".svg": "image/svg+xml"}  # fmt: skip
DVCLIVE = "dvclive"
DEFAULT_DIRS = ("history", f"{DVCLIVE}/plots")
# What DVCLive writes under plots/sklearn/, as its own dvc.yaml declares it.
SKLEARN = {
    "roc": ("fpr", "tpr", "linear", "ROC"),
    "precision_recall": ("recall", "precision", "linear", "Precision-recall"),
    "det": ("fpr", "fnr", "linear", "DET"),
    "calibration": ("prob_pred", "prob_true", "linear", "Calibration"),
    "confusion_matrix": ("actual", "predicted", "confusion", "Confusion matrix"),
}
SKIP_FIELDS = {"timestamp"}
CONFUSION = ("confusion", "confusion_normalized")


@dataclass(frozen=True)
class PlotDef:
    """One plot: its id, the files it reads, and which fields are x and y in each."""

    id: str
    files: tuple[str, ...]
    x: Mapping[str, str] = field(default_factory=dict)  # file -> x field ('' for any file)
    y: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # file -> y fields
    template: str = "linear"
    title: str | None = None
    x_label: str | None = None
    y_label: str | None = None

    def x_of(self, path: str) -> str | None:
        return self.x.get(path) or self.x.get("")

    def y_of(self, path: str) -> tuple[str, ...]:
        return self.y.get(path) or self.y.get("") or ()


@dataclass(frozen=True)
class Curve:
    """A y field of one file as points, for one revision."""

    name: str  # 'loss', or 'file: field' when several files plot the same field
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    x_field: str


@dataclass
class PlotData:
    """What a plot holds for one revision."""

    curves: list[Curve] = field(default_factory=list)
    pairs: list[tuple[str, str]] = field(default_factory=list)  # confusion: (actual, predicted)
    images: dict[str, bytes] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


# --- definitions --------------------------------------------------------------------------------


def dvc_yaml_paths(tree: Sequence[str]) -> list[str]:
    """dvc.yaml files that declare plots: the root one and DVCLive's."""
    wanted = {"dvc.yaml", f"{DVCLIVE}/dvc.yaml"}
    return [p for p in tree if p in wanted]


def parse_dvc_yaml(
    path: str, data: bytes, read: Callable[[str], bytes | None] = lambda _path: None
) -> list[PlotDef]:
    """The plots a dvc.yaml declares, at the top level and in its stages (foreach and matrix
    stages expanded, templates filled and `wdir` applied as DVC does, by core.dvcyaml); `read`
    gives other files of the revision (`vars`)."""
    try:
        pipeline = dvcyaml.parse(data, path, read)
        doc = yamlio.load(data, path)
    except GitexpError:
        return []
    top: list[tuple[str, Any]] = list(pipeline.top_plots)
    if isinstance(doc, dict) and isinstance(doc.get("plots"), dict):  # the older mapping form
        top = list(doc["plots"].items())
    defs = _definitions(top, pipeline.folder)
    for stage in pipeline.stages.values():
        wdir = stage.get("wdir")
        base = _join(pipeline.folder, wdir if isinstance(wdir, str) else ".")
        defs += _definitions(_items(stage.get("plots")), base, stage_outputs=True)
    return defs


def _items(section: Any) -> list[tuple[str, Any]]:
    """(path or id, properties) of a list like `[a, {b: {x: step}}]`."""
    items: list[tuple[str, Any]] = []
    for item in section if isinstance(section, list) else []:
        if isinstance(item, str):
            items.append((item, None))
        elif isinstance(item, dict):
            items += list(item.items())
    return items


def _definitions(
    items: Sequence[tuple[str, Any]], base: str, stage_outputs: bool = False
) -> list[PlotDef]:
    defs = []
    for key, props in items:
        props = props if isinstance(props, dict) else {}
        key = str(key)
        ys = props.get("y")
        files: list[str]
        y_map: dict[str, tuple[str, ...]] = {}
        if isinstance(ys, dict) and not stage_outputs:  # {file: field or [fields]}
            files = [_join(base, f) for f in ys]
            y_map = {_join(base, f): _fields(v) for f, v in ys.items()}
        else:
            files = [_join(base, key)]
            if ys is not None:
                y_map = {"": _fields(ys)}
        x = props.get("x")
        x_map: dict[str, str] = {}
        if isinstance(x, dict):
            x_map = {_join(base, f): str(v) for f, v in x.items()}
            files += [f for f in x_map if f not in files]
        elif x is not None:
            x_map = {"": str(x)}
        plot_id = key if (isinstance(ys, dict) and not stage_outputs) else _join(base, key)
        defs.append(
            PlotDef(
                id=plot_id,
                files=tuple(files),
                x=x_map,
                y=y_map,
                template=str(props.get("template") or "linear"),
                title=_text(props.get("title")),
                x_label=_text(props.get("x_label")),
                y_label=_text(props.get("y_label")),
            )
        )
    return defs


def _join(base: str, path: Any) -> str:
    return posixpath.normpath(posixpath.join(base or ".", str(path))).rstrip("/")


def _fields(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return (str(value),) if value is not None else ()


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def default_definitions(tree: Sequence[str]) -> list[PlotDef]:
    """DVCLive's plot files and history/ files, as DVCLive's dvc.yaml would declare them."""
    defs = []
    for path in tree:
        stem, suffix = posixpath.splitext(posixpath.basename(path))
        if path.startswith(f"{DVCLIVE}/plots/sklearn/") and stem in SKLEARN:
            x, y, template, title = SKLEARN[stem]
            defs.append(PlotDef(path, (path,), {"": x}, {"": (y,)}, template, title))
        elif path.startswith(f"{DVCLIVE}/plots/images/") and suffix.lower() in IMAGE_SUFFIXES:
            defs.append(PlotDef(path, (path,), template="image"))
        elif path.startswith((f"{DVCLIVE}/plots/metrics/", "history/")) and suffix in (
            ".tsv",
            ".csv",
        ):
            defs.append(PlotDef(path, (path,), {"": "step"}))
    return defs


def expand(defs: Sequence[PlotDef], tree: Sequence[str]) -> list[PlotDef]:
    """Definitions whose path is a directory become one per file inside it; images get their
    own template; files the tree does not have are kept (a revision may lack them)."""
    files = set(tree)
    out: list[PlotDef] = []
    for d in defs:
        if len(d.files) == 1 and d.files[0] not in files:
            inside = sorted(p for p in tree if p.startswith(d.files[0] + "/"))
            if inside:
                for path in inside:
                    suffix = posixpath.splitext(path)[1].lower()
                    if suffix in IMAGE_SUFFIXES:
                        out.append(PlotDef(path, (path,), template="image", title=d.title))
                    elif suffix in TABLE_SUFFIXES:
                        out.append(
                            PlotDef(
                                path, (path,), d.x, d.y, d.template, d.title, d.x_label, d.y_label
                            )  # fmt: skip
                        )
                continue
        suffix = posixpath.splitext(d.files[0])[1].lower() if d.files else ""
        if suffix in IMAGE_SUFFIXES and len(d.files) == 1:
            out.append(PlotDef(d.id, d.files, template="image", title=d.title))
        else:
            out.append(d)
    unique: dict[str, PlotDef] = {}
    for d in out:
        unique.setdefault(d.id, d)
    return list(unique.values())


def plot_definitions(
    tree: Sequence[str],
    dvc_yamls: Mapping[str, bytes],
    read: Callable[[str], bytes | None] = lambda _path: None,
) -> list[PlotDef]:
    """The plots of a revision: declared ones, else DVCLive's and history/ files."""
    declared = [
        d for path in sorted(dvc_yamls) for d in parse_dvc_yaml(path, dvc_yamls[path], read)
    ]
    found = default_definitions(tree)
    if declared:
        covered = {f for d in expand(declared, tree) for f in d.files}
        declared += [d for d in found if d.files[0] not in covered]
        return expand(declared, tree)
    return expand(found, tree)


# --- data ---------------------------------------------------------------------------------------


def rows_of(path: str, data: bytes) -> list[dict[str, Any]]:
    """The rows of a plot file: TSV/CSV with a header, or JSON/YAML holding a list of
    objects (possibly under one top-level key, as DVCLive's sklearn files do)."""
    suffix = posixpath.splitext(path)[1].lower()
    text = data.decode("utf-8-sig", "replace")
    if suffix in (".tsv", ".csv"):
        reader = csv.DictReader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ",")
        return [{k: v for k, v in row.items() if k is not None} for row in reader]
    try:
        doc = json.loads(text) if suffix == ".json" else yamlio.load(data, path)
    except (ValueError, RecursionError, GitexpError):
        return []
    if isinstance(doc, dict):
        lists = [v for v in doc.values() if isinstance(v, list)]
        doc = lists[0] if len(lists) == 1 else []
    return [row for row in doc if isinstance(row, dict)] if isinstance(doc, list) else []


def _number(value: Any) -> float | None:
    """A cell as a number: '' and None are not logged (no point), 'nan' is NaN."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def curves(d: PlotDef, path: str, rows: Sequence[Mapping[str, Any]]) -> list[Curve]:
    """Every y field of the file as a curve over its x field (`step` when present, else the
    row number); a row without a value for a field is no point of that curve."""
    if not rows:
        return []
    columns = list(rows[0])
    x_field = d.x_of(path) or ("step" if "step" in columns else "")
    wanted = d.y_of(path) or tuple(
        c for c in columns if c != x_field and c not in SKIP_FIELDS and c != "step"
    )
    out = []
    for name in wanted:
        xs, ys = [], []
        for index, row in enumerate(rows):
            y = _number(row.get(name))
            x = _number(row.get(x_field)) if x_field else float(index)
            if y is None or x is None:
                continue
            xs.append(x)
            ys.append(y)
        if not ys:
            continue
        if x_field and xs != sorted(xs) and d.template != "scatter":
            order = sorted(range(len(xs)), key=lambda i: xs[i])
            xs, ys = [xs[i] for i in order], [ys[i] for i in order]
        out.append(Curve(name, tuple(xs), tuple(ys), x_field or "step"))
    return out


def plot_data(d: PlotDef, files: Mapping[str, bytes | None]) -> PlotData | None:
    """The plot's data in one revision, or None when the revision has none of its files."""
    present = {p: files[p] for p in d.files if files.get(p) is not None}
    if not present:
        return None
    data = PlotData()
    for path, blob in present.items():
        assert blob is not None
        if d.template == "image":
            data.images[path] = blob
            continue
        rows = rows_of(path, blob)
        if not rows:
            data.errors.append(f"{path}: no rows to plot")
            continue
        if d.template in CONFUSION:
            x, ys = d.x_of(path) or "actual", d.y_of(path) or ("predicted",)
            data.pairs += [
                (str(r.get(x)), str(r.get(ys[0]))) for r in rows if x in r and ys[0] in r
            ]
            continue
        found = curves(d, path, rows)
        if len(d.files) > 1:
            found = [Curve(f"{path}: {c.name}", c.xs, c.ys, c.x_field) for c in found]
        data.curves += found
    return data
