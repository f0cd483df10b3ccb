"""Sweeps: a grid of runs from one command, queued or run at once, here or on a Dask cluster.

Every point becomes a queue entry (see queue.py) made from one snapshot of the workspace; a
sweep without `--queue` then drains its own entries. Points are named from their values
(`SWEEP/lr-0.01-depth-4`) and tagged `sweep=SWEEP`, so running a sweep again only runs the
points that have no run yet: a sweep of N points ends with N runs, after a crash or restart too.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitexp.core.config import load_config
from gitexp.core.names import check_free, generate_name, validate_name
from gitexp.core.params import apply_overrides, parse_override
from gitexp.errors import StateError, UsageError
from gitexp.store.git import Repo
from gitexp.store.records import iso_time, run_names
from gitexp.store.snapshot import read_workspace_file
from gitexp.sweeps import queue
from gitexp.sweeps.grid import Grid, choose_points, parse_grid, point_names
from gitexp.sweeps.queue import EntrySpec
from gitexp.sweeps.scheduler import Finished, GpuSlots, Progress, QueueSource, Scheduler
from gitexp.sweeps.worktrees import clean_stale_worktrees, snapshot_tree
from gitexp.workflows.capture import normalise_out
from gitexp.workflows.execute import find_executable
from gitexp.workflows.run import identity_env, resolve_command

Warn = Callable[[str], None]
OnEvent = Callable[[str, Progress, Finished | None], None]


@dataclass(frozen=True)
class SweepRequest:
    command: tuple[str, ...]
    name: str | None = None  # the sweep's name (a single run's name when nothing is swept)
    overrides: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    message: str | None = None
    record_failed: bool = True
    outs: tuple[str, ...] = ()
    jobs: int | None = None  # None: 1 here, the cluster's threads on a cluster
    queue: bool = False
    cluster: str | None = None  # a Dask scheduler address
    cluster_remote: str | None = None  # a git remote the cluster's workers fetch from
    sample: int | None = None  # --random N
    seed: int | None = None
    trials: int | None = None
    optimize: str | None = None
    maximize: bool = False
    fail_fast: bool = False
    gpus_per_run: int | None = None


@dataclass(frozen=True)
class Point:
    name: str
    overrides: tuple[str, ...]


@dataclass(frozen=True)
class SweepPlan:
    name: str | None  # the sweep, None for a single run
    grid: Grid
    points: list[Point]  # to queue
    recorded: list[str]  # points that already have a run (skipped)
    waiting: list[str]  # points already queued (drained with the new ones)
    busy: list[str]  # points another worker runs now
    overrides: dict[str, tuple[str, ...]] = field(default_factory=dict)  # of every point


@dataclass
class SweepResult:
    plan: SweepPlan
    queued: list[str] = field(default_factory=list)
    progress: Progress | None = None
    stopped_by: int | None = None  # the signal that stopped it
    failed_fast: bool = False

    @property
    def exit_code(self) -> int:
        if self.stopped_by:
            return 128 + self.stopped_by if not self.failed_fast else 1
        finished = self.progress.finished if self.progress else []
        return 1 if any(f.result.status != "success" for f in finished) else 0


def is_sweep(overrides: Sequence[str]) -> bool:
    return parse_grid(overrides).is_sweep


def _check_request(request: SweepRequest) -> None:
    if request.jobs is not None and request.jobs < 1:
        raise UsageError("-j needs a number of runs at once of at least 1")
    if request.trials is not None:
        if request.trials < 1:
            raise UsageError("--trials needs a number of runs of at least 1")
        if not request.optimize:
            raise UsageError("--trials needs the metric to optimize: --optimize METRIC")
        if request.queue:
            raise UsageError("--trials picks each point from the runs before it: it cannot be "
                             "queued; run it with -j N or --cluster")  # fmt: skip
        if request.sample is not None:
            raise UsageError("--random and --trials are two ways to pick points: use one")
    if request.queue and request.cluster:
        raise UsageError("--queue stores the runs for later: leave out --cluster, and give it "
                         "to 'gitexp queue start' instead")  # fmt: skip
    if request.gpus_per_run is not None and request.gpus_per_run < 1:
        raise UsageError("--gpus-per-run needs a number of at least 1")


def _check_overrides(repo: Repo, overrides: Sequence[str]) -> None:
    """Every override of a point must apply to the workspace's params, before anything runs:
    a wrong key is one error now, not one failed run per point."""
    by_file: dict[str, list[Any]] = {}
    for spec in overrides:
        override = parse_override(spec)
        by_file.setdefault(override.file, []).append(override)
    for path, items in by_file.items():
        data = read_workspace_file(repo, path)
        if data is None and not all(o.add for o in items):
            raise UsageError(
                f"params file {path} does not exist; to create it, write -S +KEY=VALUE"
            )
        apply_overrides(data or b"", path, items)


def plan_sweep(repo: Repo, request: SweepRequest) -> SweepPlan:
    """The points to queue, the ones already recorded or queued; nothing is written."""
    _check_request(request)
    grid = parse_grid(request.overrides)
    runs, other_refs = run_names(repo)
    entries = {e.name: e for e in queue.list_entries(repo, ("queued", "running"))}
    if not grid.is_sweep and request.trials is None:
        name = validate_name(request.name) if request.name else generate_name(runs)
        check_free(name, [*runs, *entries], other_refs)
        _check_overrides(repo, grid.overrides({}))
        return SweepPlan(None, grid, [Point(name, grid.overrides({}))], [], [], [])
    sweep = validate_name(request.name) if request.name else generate_name(runs)
    if request.trials is not None:
        return SweepPlan(sweep, grid, [], [], [], [])  # trials are proposed one by one
    values = choose_points(grid, request.sample, request.seed)
    names = point_names(sweep, grid, values)
    plan = SweepPlan(sweep, grid, [], [], [], [])
    recorded = {r.lower() for r in runs}
    for name, point in zip(names, values, strict=True):
        plan.overrides[name] = grid.overrides(point)
        if name.lower() in recorded:
            plan.recorded.append(name)
        elif name in entries:
            (plan.waiting if entries[name].state == "queued" else plan.busy).append(name)
        else:
            check_free(name, [*runs, *entries], other_refs)
            plan.points.append(Point(name, grid.overrides(point)))
    if plan.points:
        _check_overrides(repo, plan.points[0].overrides)
        for point in plan.points[1:]:
            for spec in point.overrides:
                parse_override(spec)
    return plan


def _cwd_in(repo: Repo) -> str:
    here, root = Path.cwd().resolve(), repo.root.resolve()
    return here.relative_to(root).as_posix() if root in (here, *here.parents) else "."


def _outs(repo: Repo, outs: Sequence[str], cwd: str) -> tuple[str, ...]:
    """Outputs relative to the directory the runs start in (in their worktrees)."""
    return tuple(
        os.path.relpath(repo.root / normalise_out(repo.root, out), repo.root / cwd) for out in outs
    )


class Spec:
    """Makes the entry specs of one sweep."""

    def __init__(self, repo: Repo, request: SweepRequest, sweep: str | None) -> None:
        command = resolve_command(repo, request.command)
        if not request.cluster:  # a cluster's workers may have programs this machine lacks
            find_executable(command, os.environ)
        if request.outs and not (repo.root / ".dvc").is_dir():
            raise UsageError("--out needs DVC in this repository: run 'gitexp init' first")
        for key in request.tags:
            if not key or any(c.isspace() for c in key):
                raise UsageError(f"invalid tag name '{key}': use a name without spaces")
        self.cwd = _cwd_in(repo)
        self.base = dict(
            command=command,
            tags=dict(request.tags),
            message=request.message,
            record_failed=request.record_failed,
            outs=_outs(repo, request.outs, self.cwd),
            cwd=self.cwd,
            branch=repo.text(["symbolic-ref", "-q", "HEAD"], check=False) or None,
            sweep=sweep,
            queued=iso_time(time.time()),
            keep=request.queue,
        )

    def make(self, point: Point, order: int) -> EntrySpec:
        return EntrySpec(name=point.name, overrides=point.overrides, order=order, **self.base)


def run_sweep(
    repo: Repo, request: SweepRequest, warn: Warn, on_event: OnEvent = lambda *_: None
) -> SweepResult:
    """Queues the sweep's points and, unless `request.queue`, runs them to the end."""
    base = repo.head()
    if base is None:
        raise StateError("this repository has no commit yet: make a first commit, then run again")
    operation = repo.in_progress_operation()
    if operation:
        raise StateError(f"{operation} is in progress: finish or abort it, then run again")
    if not request.queue:
        clean_stale_worktrees(repo)
        for name in queue.requeue_stale(repo):
            warn(f"{name} was cut off when its worker died; it is queued again")
    plan = plan_sweep(repo, request)
    specs = Spec(repo, request, plan.name)
    config = load_config(lambda p: read_workspace_file(repo, p))
    tree = snapshot_tree(repo, config.max_file_bytes, warn)
    identity = identity_env(repo.author_ident())
    entries = queue.enqueue(
        repo, tree, base, [specs.make(p, i) for i, p in enumerate(plan.points)], identity
    )
    result = SweepResult(plan, queued=[e.name for e in entries])
    if request.queue:
        return result
    executor = executor_for(repo, request, warn)
    scheduler = Scheduler(
        repo,
        executor,
        request.jobs,
        gpus=gpu_slots(request.gpus_per_run),
        fail_fast=request.fail_fast,
        on_event=on_event,
    )
    if request.trials is not None:
        from gitexp.sweeps.search import TrialSource

        source: Any = TrialSource(repo, request, plan, specs, tree, base, identity, warn)
    else:
        source = QueueSource(repo, {*result.queued, *plan.waiting})
    try:
        result.progress = scheduler.run(source)
    finally:
        _drop_unstarted(repo, {*result.queued, *plan.waiting})
    result.stopped_by = scheduler.stopping
    result.failed_fast = scheduler.failed_fast
    return result


def _drop_unstarted(repo: Repo, names: set[str]) -> None:
    """Entries of a sweep without --queue that did not start (it was stopped) are dropped."""
    left = [e for e in queue.list_entries(repo, ("queued",)) if e.name in names and not e.spec.keep]
    if left:
        queue.remove(repo, left)


def executor_for(repo: Repo, request: SweepRequest, warn: Warn) -> Any:
    """Where the points run: a Dask cluster, or a pool of processes on this machine."""
    if request.cluster:
        from gitexp.sweeps.cluster import DaskPool

        return DaskPool(repo, request.cluster, request.cluster_remote, request.gpus_per_run, warn)
    from gitexp.sweeps.pool import LocalPool

    return LocalPool(repo, request.fail_fast)


def gpu_slots(per_run: int | None) -> GpuSlots | None:
    """GPUs for runs on this machine: those CUDA_VISIBLE_DEVICES lists, else all the driver
    shows."""
    if per_run is None:
        return None
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        devices = [d.strip() for d in listed.split(",") if d.strip()]
    else:
        from gitexp.store.environment import gpu_models

        devices = [str(i) for i in range(len(gpu_models()))]
    if len(devices) < per_run:
        raise UsageError(
            f"--gpus-per-run {per_run} needs at least {per_run} GPU(s); found {len(devices)} "
            "(set CUDA_VISIBLE_DEVICES to the GPUs to use)"
        )
    return GpuSlots(devices, per_run)


def _python() -> str:
    """This Python as a command: its name when PATH finds this one by it (so the recorded
    command runs elsewhere too), else its path."""
    import shutil

    name = os.path.basename(sys.executable)
    found = shutil.which(name)
    same = found is not None and os.path.realpath(found) == os.path.realpath(sys.executable)
    return name if same else sys.executable


def command_argv(command: str | Sequence[str]) -> tuple[str, ...]:
    return tuple(shlex.split(command)) if isinstance(command, str) else tuple(command)


def metric_of(record: dict[str, Any] | None, key: str) -> Any:
    """A metric of a run record by `key` or `file:key` (None when the run lacks it)."""
    metrics = (record or {}).get("metrics") or {}
    path, colon, name = key.rpartition(":")
    if colon and path in metrics:
        return (metrics.get(path) or {}).get(name)
    for flat in metrics.values():
        if isinstance(flat, dict) and key in flat:
            return flat[key]
    return None


# --- the Python API ---------------------------------------------------------------------------


def _grid_specs(grid: Mapping[str, Any]) -> list[str]:
    """`{"train.lr": [0.01, 0.1], "depth": "range(2,8,2)", "seed": 1}` as `-S` specs."""
    import json

    from gitexp.core.yamlio import dump_inline

    def literal(value: Any) -> str:
        # A string is quoted so that a comma in it is not read as the sweep's separator.
        return json.dumps(value) if isinstance(value, str) else dump_inline(value)

    specs = []
    for key, values in grid.items():
        if isinstance(values, str):
            specs.append(f"{key}={values}")
        elif isinstance(values, (list, tuple)):
            if not values:
                raise UsageError(f"grid key '{key}' has no values")
            specs.append(f"{key}=choice({', '.join(literal(v) for v in values)})")
        else:
            specs.append(f"{key}={literal(values)}")
    return specs


def sweep(
    target: str | Sequence[str] | Callable[..., Any],
    grid: Mapping[str, Any] | None = None,
    *,
    name: str | None = None,
    jobs: int | None = None,
    cluster: str | None = None,
    queue: bool = False,
    random: int | None = None,
    seed: int | None = None,
    trials: int | None = None,
    optimize: str | None = None,
    maximize: bool = False,
    fail_fast: bool = False,
    gpus_per_run: int | None = None,
    tags: Mapping[str, str] | None = None,
    path: str = ".",
) -> Any:
    """Runs `target` once per point of `grid`, as `gitexp run -S ... -j JOBS` would, and returns
    the sweep's runs as `search_runs` does (a DataFrame with pandas, else a list of dicts).

        gitexp.sweep("python train.py", {"train.lr": [0.001, 0.01], "depth": "range(2,8,2)"},
                     jobs=2)

    `target` is a command (a string split like a shell's, or a list) or a function defined at
    the top level of a module or script in the repository: each run calls it with the params
    (overrides applied) and logs the numbers of the mapping it returns as metrics. A grid
    value is a list of values, a sweep string (`"range(1,4)"`, `"interval(1e-4,1e-1)"` for
    `trials`) or a single value for every run.
    """
    from gitexp.store.journal import recover
    from gitexp.tracking.api import search_runs

    repo = Repo.discover(path)
    recover(repo)
    if callable(target):
        from gitexp.sweeps.call import reference

        command: tuple[str, ...] = (_python(), "-m", "gitexp.sweeps.call",
                                    reference(target, repo.root))  # fmt: skip
    else:
        command = command_argv(target)
    request = SweepRequest(
        command=command, name=name, overrides=tuple(_grid_specs(grid or {})), tags=dict(tags or {}),
        jobs=jobs, queue=queue, cluster=cluster, sample=random, seed=seed, trials=trials,
        optimize=optimize, maximize=maximize, fail_fast=fail_fast, gpus_per_run=gpus_per_run,
    )  # fmt: skip

    def warn(message: str) -> None:
        print(f"gitexp: warning: {message}", file=sys.stderr)

    def report(event: str, progress: Progress, finished: Finished | None) -> None:
        if event == "finished" and finished is not None:
            print(f"gitexp: [{progress.done}/{progress.total}] {finished.entry.name}: "
                  f"{finished.result.status}", file=sys.stderr)  # fmt: skip

    result = run_sweep(repo, request, warn, report)
    sweep_name = result.plan.name
    runs = search_runs(f"tags.sweep == '{sweep_name}'" if sweep_name else None, path=path)
    if sweep_name is None:  # one run, not a sweep
        names = set(result.queued)
        runs = runs[runs["run_id"].isin(names)] if hasattr(runs, "iloc") else [
            r for r in runs if r["run_id"] in names]  # fmt: skip
    return runs
