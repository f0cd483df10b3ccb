"""Reading what a report shows: base and head, the branch's runs, plots and budgets. Git is
read through gitexp.store (one batch process); everything after this module is pure."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gitexp.core.compare import Entry
from gitexp.core.config import load_config
from gitexp.core.metrics import is_number, sort_key
from gitexp.dvc.data import DataChange, collect, diff_data, dir_listing, entry_of, read_tracked
from gitexp.errors import UsageError
from gitexp.report.budgets import Budget, evaluate_budget
from gitexp.report.plots import (
    DEFAULT_DIRS,
    PlotData,
    PlotDef,
    dvc_yaml_paths,
    plot_data,
    plot_definitions,
)
from gitexp.store.git import BatchReader, Repo
from gitexp.store.snapshot import (
    State,
    Target,
    list_files,
    read_files,
    read_pointer_files,
    read_states,
    read_workspace_file,
    resolve_target,
)

LOWER_IS_BETTER = re.compile(r"(loss|error|err|rmse|mse|mae|mape|time|latency|perplexity|wer)")
HIGHER_IS_BETTER = re.compile(r"(acc|accuracy|f1|auc|precision|recall|r2|score|map|iou|bleu)")
SWEEP_CAP = 12  # runs drawn in the sweep chart
MAX_IMAGE_BYTES = 2_000_000


@dataclass(frozen=True)
class Side:
    """One revision drawn in the plots: base, head or the best run."""

    key: str  # what keeps its colour the same everywhere ('base', 'head', a run name)
    label: str
    target: Target


@dataclass
class PlotView:
    definition: PlotDef
    data: dict[str, PlotData]  # side label -> its data


@dataclass
class ReportData:
    base_label: str
    head_label: str
    base: State
    head: State
    data_changes: list[DataChange]
    runs: list[Entry]  # on the branch, ranked by `metric`, best first
    metric: str | None
    best: Entry | None
    directions: dict[str, str]
    sides: list[Side] = field(default_factory=list)
    plots: list[PlotView] = field(default_factory=list)
    sweep: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = field(default_factory=dict)
    checks: list[Budget] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    title: str = ""
    head_run: str | None = None

    @property
    def failed(self) -> bool:
        return any(not c.passed for c in self.checks)


def direction(key: str, configured: dict[str, str]) -> str | None:
    """'min', 'max' or None (unknown): configuration first, then the metric's name."""
    leaf = key.rsplit(":", 1)[-1].rsplit(".", 1)[-1].lower()
    for name in (key, key.rsplit(":", 1)[-1], leaf):
        if name in configured:
            return configured[name]
    if LOWER_IS_BETTER.search(leaf):
        return "min"
    if HIGHER_IS_BETTER.search(leaf):
        return "max"
    return None


def flat(groups: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Values of all files by key, and by `file:key` too."""
    merged: dict[str, Any] = {}
    for path, values in groups.items():
        for key, value in values.items():
            merged.setdefault(key, value)
            merged[f"{path}:{key}"] = value
    return merged


def metric_of(entry: Entry | State, key: str) -> Any:
    return flat(entry.metrics).get(key)


def metric_keys(groups: Sequence[dict[str, dict[str, Any]]]) -> list[str]:
    return list(dict.fromkeys(k for g in groups for values in g.values() for k in values))


def default_base(repo: Repo) -> tuple[str, str]:
    """The merge base of HEAD with the default branch (origin/HEAD, else main or master),
    and that branch's name."""
    for candidate in ("refs/remotes/origin/HEAD", "refs/heads/main", "refs/heads/master"):
        if repo.resolve_commit(candidate):
            proc = repo.git(["merge-base", "HEAD", candidate], check=False)
            if proc.returncode == 0:
                name = candidate.rsplit("/", 1)[-1]
                if name == "HEAD":
                    name = repo.text(["rev-parse", "--abbrev-ref", candidate], check=False)
                return proc.stdout.decode().strip(), name.removeprefix("origin/") or name
    raise UsageError("no default branch found (origin/HEAD, main, master): pass --base REV")


def _branch_name(repo: Repo, spec: str) -> str:
    """What the title calls the head: the pull request's branch in CI, the current branch
    for HEAD, else the name given."""
    ci_branch = os.environ.get("GITHUB_HEAD_REF") or os.environ.get(
        "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME"
    )
    if ci_branch:
        return ci_branch
    if spec == "HEAD":
        name = repo.git(["symbolic-ref", "-q", "--short", "HEAD"], check=False).stdout
        return name.decode().strip() or spec
    return spec


def gather(
    repo: Repo,
    base_spec: str | None,
    head_spec: str,
    metric: str | None,
    checks: Sequence[str],
    runs: Sequence[Entry],
) -> ReportData:
    if base_spec:
        base_target = resolve_target(repo, base_spec)
        base_name = base_spec.removeprefix("origin/")
    else:
        sha, base_name = default_base(repo)
        base_target = Target(label=base_name, rev=sha)
    head_target = resolve_target(repo, head_spec)
    if base_target.rev is None:
        raise UsageError("--base must be a revision or a run, not the workspace")
    config = load_config(lambda p: read_workspace_file(repo, p))
    with repo.batch_reader() as reader:
        base, head = read_states(repo, [base_target, head_target], reader)
        pointers = [read_pointer_files(repo, t, reader) for t in (base_target, head_target)]
        on_branch = runs_on_branch(repo, base_target, head_target, runs)
        keys = metric_keys([head.metrics, base.metrics, *(r.metrics for r in on_branch)])
        if (
            metric
            and metric not in keys
            and not any(metric in flat(g) for g in [head.metrics, base.metrics])
        ):
            known = ", ".join(keys[:12]) or "none"
            raise UsageError(f"unknown metric '{metric}': the metrics are {known}")
        metric = metric or (keys[0] if keys else None)
        ranked = rank(on_branch, metric, config.directions)
        best = ranked[0] if ranked and metric and is_number(metric_of(ranked[0], metric)) else None
        report = ReportData(
            base_label=base_target.label,
            head_label=head_target.label,
            base=base,
            head=head,
            data_changes=diff_data(
                collect(pointers[0]), collect(pointers[1]), lambda e: dir_listing(repo.root, e.obj)
            ),
            runs=ranked,
            metric=metric,
            best=best,
            directions=config.directions,
            head_run=head_target.run,
        )
        head_name = _branch_name(repo, head_spec)
        report.title = f"{head_name} -> {base_name}"
        if head_target.run and head_name != head_target.run:
            report.title += f", run {head_target.run}"
        report.sides = [
            Side("base", f"base ({base_name})", base_target),
            Side(head_target.run or "head", f"head ({head_target.run or head_name})", head_target),
        ]
        if best is not None and best.rev != head_target.rev:
            report.sides.append(Side(best.name, f"best: {best.name}", Target(best.name, best.rev)))
        report.plots = read_plots(repo, report.sides, reader)
        report.sweep = read_sweep(repo, report, reader)
    report.checks = [evaluate_budget(expr, base, head) for expr in checks]
    for state in (base, head):
        label = state.target.label
        if not state.params:
            report.notes.append(f"{label} has no params file")
        if not state.metrics:
            report.notes.append(f"{label} has no metrics")
        report.notes += [f"{label}: {m}" for m in state.errors.values()]
        report.notes += [f"{label}: {m}" for m in state.notes.values()]
    return report


def runs_on_branch(repo: Repo, base: Target, head: Target, runs: Sequence[Entry]) -> list[Entry]:
    """Runs whose base commit is in base..head (head's own commit included)."""
    assert base.rev
    head_rev = head.rev or repo.head() or base.rev
    commits = set(repo.text(["rev-list", f"{base.rev}..{head_rev}"]).split()) | {head_rev}
    return [r for r in runs if r.base in commits]


def rank(runs: Sequence[Entry], key: str | None, directions: dict[str, str]) -> list[Entry]:
    """Best first by `key` (runs without a number for it last), newest first otherwise."""
    if not key:
        return list(runs)
    descending = direction(key, directions) != "min"
    return sorted(runs, key=lambda r: sort_key(metric_of(r, key), descending))


def read_plots(repo: Repo, sides: Sequence[Side], reader: BatchReader) -> list[PlotView]:
    """Every plot any side has, with each side's data."""
    views: dict[str, PlotView] = {}
    for side in sides:
        for definition, data in _plots_of(repo, side.target, reader):
            view = views.setdefault(definition.id, PlotView(definition, {}))
            view.data[side.label] = data
    return list(views.values())


def _plots_of(repo: Repo, target: Target, reader: BatchReader) -> list[tuple[PlotDef, PlotData]]:
    yaml_paths = dvc_yaml_paths(["dvc.yaml", "dvclive/dvc.yaml"])
    yamls = {p: d for p, d in read_files(repo, target, yaml_paths, reader).items() if d}

    def read(path: str) -> bytes | None:  # files dvc.yaml names (vars)
        return read_files(repo, target, [path], reader)[path]

    declared = plot_definitions([], yamls, read)
    prefixes = sorted({*DEFAULT_DIRS, *(f for d in declared for f in d.files)})
    tree = list_files(repo, target, prefixes)
    # Plot files that DVC keeps, alone or inside a cached folder (DVCLive's folder often is).
    tracked = collect(read_pointer_files(repo, target, reader))
    for entry in tracked.values():
        if entry.obj.digest.endswith(".dir"):
            inside = [f"{entry.path}/{p}" for p in dir_listing(repo.root, entry.obj) or {}]
            tree += [p for p in inside if any(p.startswith(f"{x}/") or p == x for x in prefixes)]
        elif any(entry.path.startswith(f"{x}/") or entry.path == x for x in prefixes):
            tree.append(entry.path)
    definitions = plot_definitions(sorted(set(tree)), yamls, read)
    paths = sorted({f for d in definitions for f in d.files})
    files = read_files(repo, target, paths, reader)
    missing = [p for p in paths if files.get(p) is None]
    if missing:
        for path in missing:
            found = entry_of(tracked, path)
            if found is not None:
                files[path] = read_tracked(repo.root, *found)
    for path, blob in files.items():
        if blob is not None and len(blob) > MAX_IMAGE_BYTES:
            files[path] = None
    found = []
    for definition in definitions:
        data = plot_data(definition, files)
        if data is not None:
            found.append((definition, data))
    return found


def read_sweep(
    repo: Repo, report: ReportData, reader: BatchReader
) -> dict[str, tuple[tuple[float, ...], tuple[float, ...]]]:
    """The main metric's history in each of the branch's best runs (up to SWEEP_CAP), read
    from the file that holds it in the head or base."""
    metric = report.metric
    if not metric or len(report.runs) < 2:
        return {}
    leaf = metric.rsplit(":", 1)[-1]
    source = next(
        (
            (view.definition, path)
            for view in report.plots
            for data in view.data.values()
            for curve in data.curves
            if curve.name == leaf
            for path in view.definition.files
        ),
        None,
    )
    if source is None:
        return {}
    definition, path = source
    chosen = report.runs[:SWEEP_CAP]
    blobs = reader.read_many([f"{r.rev}:{path}" for r in chosen])
    sweep = {}
    for run, blob in zip(chosen, blobs, strict=True):
        data = plot_data(definition, {path: blob})
        curve = next((c for c in (data.curves if data else []) if c.name == leaf), None)
        if curve is not None:
            sweep[run.name] = (curve.xs, curve.ys)
    return sweep


def histories(repo: Repo, target: Target, reader: BatchReader) -> dict[str, list[float]]:
    """Each plotted field of a revision as its list of values (the Python API's `get_run`)."""
    found: dict[str, list[float]] = {}
    for definition, data in _plots_of(repo, target, reader):
        if definition.template in ("linear", "simple", "smooth"):
            for curve in data.curves:
                found.setdefault(curve.name, list(curve.ys))
    return found
