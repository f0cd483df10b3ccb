"""Sweeps on the command line: the sweep options of `gitexp run`, its progress display, and
`gitexp queue list|status|start|logs|remove|kill`."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from gitexp.cli.app import cli, open_repo, output_options, warn
from gitexp.errors import UsageError

SCHEDULER_ENV = "GITEXP_DASK_SCHEDULER"


def _cluster_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("-j", "--jobs", type=int, metavar="N",
                     help="Run up to N points at once, each in a worktree of its own (default 1; "
                     "on a cluster, its number of worker threads)."),
        click.option("--cluster", metavar="ADDRESS",
                     help=f"Run the points on a Dask scheduler (tcp://HOST:8786; ${SCHEDULER_ENV} "
                     "for sweeps)."),
        click.option("--cluster-remote", metavar="REMOTE",
                     help="Send the snapshot to the cluster through this git remote (default: a "
                     "git bundle through Dask)."),
        click.option("--fail-fast", is_flag=True, help="Stop at the first run that fails."),
        click.option("--gpus-per-run", type=int, metavar="K",
                     help="Give each run K GPUs of CUDA_VISIBLE_DEVICES, never shared."),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def sweep_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options `gitexp run` has for sweeps."""
    options = [
        click.option("--queue", "to_queue", is_flag=True,
                     help="Queue the runs for 'gitexp queue start' instead of running them."),
        click.option("--random", "sample", type=int, metavar="N",
                     help="Run N points of the grid drawn at random."),
        click.option("--seed", type=int, help="Seed of --random and --trials."),
        click.option("--trials", type=int, metavar="N",
                     help="Search: N runs, each point chosen by Optuna from the runs so far."),
        click.option("--optimize", metavar="METRIC", help="The metric --trials optimizes."),
        click.option("--maximize", is_flag=True, help="Maximize METRIC (default: minimize)."),
        click.option("--dry-run", is_flag=True, help="List the runs of the sweep; run nothing."),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return _cluster_options(func)


def wants_sweep(overrides: tuple[str, ...], options: dict[str, Any]) -> bool:
    from gitexp.sweeps.grid import parse_grid  # light: a plain run imports no sweep

    explicit = ("to_queue", "cluster", "sample", "trials", "dry_run")
    return any(options.get(k) for k in explicit) or parse_grid(overrides).is_sweep


def run_sweep_command(command: tuple[str, ...], name: str | None, overrides: tuple[str, ...],
                      tags: dict[str, str], message: str | None, record_failed: bool,
                      outs: tuple[str, ...], options: dict[str, Any]) -> int:  # fmt: skip
    """`gitexp run` with a grid, --queue, --cluster or --trials. Returns the exit code."""
    import os

    from gitexp.sweeps.runner import SweepRequest, is_sweep, plan_sweep, run_sweep

    cluster = options["cluster"]
    if cluster is None and (is_sweep(overrides) or options["trials"]):
        cluster = os.environ.get(SCHEDULER_ENV) or None
    request = SweepRequest(
        command=command, name=name, overrides=overrides, tags=tags, message=message,
        record_failed=record_failed, outs=outs, jobs=options["jobs"], queue=options["to_queue"],
        cluster=cluster, cluster_remote=options["cluster_remote"], sample=options["sample"],
        seed=options["seed"], trials=options["trials"], optimize=options["optimize"],
        maximize=options["maximize"], fail_fast=options["fail_fast"],
        gpus_per_run=options["gpus_per_run"],
    )  # fmt: skip
    repo = open_repo()
    if options["dry_run"]:
        click.echo(_plan_text(plan_sweep(repo, request), request))
        return 0
    view = ProgressView(request.optimize, request.maximize if request.optimize else None)
    result = run_sweep(repo, request, warn, view)
    view.close()
    plan = result.plan
    label = f"sweep '{plan.name}'" if plan.name else f"run '{plan.points[0].name}'"
    if plan.recorded:
        click.echo(f"gitexp: {len(plan.recorded)} point(s) already recorded, skipped", err=True)
    if request.queue:
        click.echo(
            f"gitexp: queued {len(result.queued)} run(s) of {label}; run them with "
            "'gitexp queue start'",
            err=True,
        )
        return 0
    click.echo(view.summary(label, result.progress, result.stopped_by, result.failed_fast,
                            plan.name), err=True)  # fmt: skip
    return result.exit_code


def _plan_text(plan: Any, request: Any) -> str:
    from gitexp.core.render import render_rows
    from gitexp.sweeps.grid import Axis

    if request.trials is not None:
        axes = ", ".join(a.target for a in plan.grid.axes)
        return (f"sweep '{plan.name}': {request.trials} trial(s) over {axes}, optimizing "
                f"{request.optimize} ({'max' if request.maximize else 'min'}); each point is "
                "chosen when a run ends")  # fmt: skip
    axes = [a for a in plan.grid.axes if isinstance(a, Axis)]
    rows = []
    for status, names in (("to run", [p.name for p in plan.points]), ("queued", plan.waiting),
                          ("running", plan.busy), ("recorded", plan.recorded)):  # fmt: skip
        rows += [[name, status] for name in names]
    for row in rows:
        specs = dict(o.split("=", 1) for o in plan.overrides.get(row[0], ()))
        row += [specs.get(a.target) for a in axes]
    text = render_rows(["run", "status", *[a.target for a in axes]], rows, "table")
    return f"{text}\n{len(plan.points)} run(s) to do" + (" (queued)" if request.queue else "")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours}:{minutes:02d}:{seconds % 60:02d}" if hours else f"{minutes}:{seconds % 60:02d}"


class ProgressView:
    """One status line (redrawn on a terminal) and a line per finished run, on stderr."""

    def __init__(self, metric: str | None, maximize: bool | None) -> None:
        self.metric = metric
        self.maximize = maximize
        self.tty = sys.stderr.isatty()
        self.drawn = False
        self.started = time.time()

    def __call__(self, event: str, progress: Any, finished: Any) -> None:
        if event == "finished":
            self._clear()
            click.echo(self._finished_line(progress, finished), err=True)
        if self.tty:
            self._clear()
            click.echo(self._status(progress), err=True, nl=False)
            self.drawn = True

    def _clear(self) -> None:
        if self.drawn:
            click.echo("\r\x1b[K", err=True, nl=False)
            self.drawn = False

    def close(self) -> None:
        self._clear()

    def _status(self, p: Any) -> str:
        text = (f"gitexp: {p.done}/{p.total} done, {p.failed} failed, {len(p.running)} running, "
                f"ETA {_duration(p.eta)}")  # fmt: skip
        best = self.best(p.finished)
        if best:
            text += f", best {best[0]}: {best[1]}"
        width = click.get_terminal_size()[0] if self.tty else 200
        return text[: max(width - 1, 20)]

    def _finished_line(self, p: Any, f: Any) -> str:
        mark = "ok" if f.result.status == "success" else f.result.status
        if f.result.status == "failed":
            mark += f" (exit {f.result.exit_code})"
        detail = self._metrics_text(f.record) if f.record else (f.result.error or "")
        if f.result.status not in ("success", "failed", "interrupted") or not f.record:
            detail = f"not recorded: {f.result.error or 'see gitexp queue logs ' + f.entry.name}"
        return (f"gitexp: [{p.done}/{p.total}] {f.entry.name}: {mark} "
                f"({f.duration:.1f} s) {detail}").rstrip()  # fmt: skip

    def _metrics_text(self, record: dict[str, Any], limit: int = 3) -> str:
        from gitexp.core.render import format_value

        flat: dict[str, Any] = {}
        for values in (record.get("metrics") or {}).values():
            if isinstance(values, dict):
                flat.update(values)
        keys = list(flat)
        if self.metric and self.metric in keys:
            keys.remove(self.metric)
            keys.insert(0, self.metric)
        return " ".join(f"{k} {format_value(flat[k], 4)}" for k in keys[:limit])

    def best(self, finished: list[Any]) -> tuple[str, str] | None:
        """The best successful run so far by the metric (--optimize, else the first metric
        whose direction is known from gitexp.yaml or its name), with its metrics."""
        from gitexp.core.metrics import is_number
        from gitexp.sweeps.runner import metric_of

        done = [f for f in finished if f.result.status == "success" and f.record]
        if not done:
            return None
        metric, maximize = self.metric, self.maximize
        if metric is None:
            metric, maximize = _guess_metric(done[0].record)
            if metric is None:
                return None

        def score(f: Any) -> float:
            value = metric_of(f.record, metric)
            if not is_number(value) or (isinstance(value, float) and math.isnan(value)):
                return -math.inf
            return value if maximize else -value

        top = max(done, key=score)
        if score(top) == -math.inf:
            return None
        saved = self.metric
        self.metric = metric
        try:
            return top.entry.name, self._metrics_text(top.record)
        finally:
            self.metric = saved

    def summary(self, label: str, progress: Any, stopped_by: int | None, failed_fast: bool,
                sweep: str | None) -> str:  # fmt: skip
        finished = progress.finished if progress else []
        counts: dict[str, int] = {}
        for f in finished:
            counts[f.result.status] = counts.get(f.result.status, 0) + 1
        parts = ", ".join(f"{n} {s}" for s, n in counts.items()) or "nothing run"
        text = f"gitexp: {label}: {parts} in {_duration(time.time() - self.started)}"
        best = self.best(finished)
        if best:
            text += f"; best {best[0]}: {best[1]}"
        if failed_fast:
            text += "; stopped at the first failure (--fail-fast)"
        elif stopped_by:
            text += "; stopped"
        if sweep:
            text += f"\ngitexp: compare them: gitexp show --filter \"tags.sweep == '{sweep}'\""
        return text


def _guess_metric(record: dict[str, Any]) -> tuple[str | None, bool | None]:
    from gitexp.report.gather import direction

    for values in (record.get("metrics") or {}).values():
        for key in values if isinstance(values, dict) else ():
            goal = direction(key, {})
            if goal:
                return key, goal == "max"
    return None, None


# --- gitexp queue ------------------------------------------------------------------------------


@cli.group("queue")
def queue_group() -> None:
    """Runs queued with 'gitexp run --queue': list, start, status, logs, remove, kill."""


def _status_of(entry: Any) -> str:
    if entry.state != "done":
        return entry.state
    return str((entry.outcome or {}).get("status") or "done")


@queue_group.command("list")
@output_options
def queue_list(fmt: str | None, precision: int) -> None:
    """List queued, running and finished entries, oldest first."""
    from gitexp.cli.views import short_time
    from gitexp.core.render import render_rows
    from gitexp.sweeps.queue import Lease, list_entries

    repo = open_repo()
    short = fmt in (None, "md")
    rows = []
    for entry in list_entries(repo):
        where = None
        if entry.state == "running":
            info = Lease.read(repo, entry.name)
            where = f"{info.get('host')} pid {info.get('pid')}" if info else "worker died"
        run = (entry.outcome or {}).get("run")
        rows.append([entry.name, _status_of(entry), entry.spec.sweep,
                     " ".join(entry.spec.overrides),
                     short_time(entry.spec.queued) if short else entry.spec.queued,
                     run[:10] if run and short else run, where])  # fmt: skip
    if not rows and not fmt:
        click.echo("the queue is empty: queue runs with 'gitexp run --queue'")
        return
    headers = ["run", "status", "sweep", "overrides", "queued", "commit", "where"]
    click.echo(render_rows(headers, rows, fmt or "table", precision))


@queue_group.command("status")
def queue_status() -> None:
    """How many entries wait, run and are done, and the workers running them."""
    from gitexp.sweeps.queue import Lease, list_entries

    repo = open_repo()
    entries = list_entries(repo)
    counts = {"queued": 0, "running": 0}
    for entry in entries:
        counts[_status_of(entry)] = counts.get(_status_of(entry), 0) + 1
    click.echo(", ".join(f"{n} {s}" for s, n in counts.items() if n) or "the queue is empty")
    workers: dict[str, int] = {}
    for entry in (e for e in entries if e.state == "running"):
        info = Lease.read(repo, entry.name)
        key = f"worker {info.get('host')} pid {info.get('driver')}" if info else "dead"
        workers[key] = workers.get(key, 0) + 1
    for worker, n in workers.items():
        if worker == "dead":
            click.echo(f"{n} running for a worker that died ('gitexp queue start' queues them "
                       "again)")  # fmt: skip
        else:
            click.echo(f"{worker}: {n} running")


@queue_group.command("start")
@_cluster_options
@click.option("--watch", is_flag=True, help="Keep running: wait for new entries when empty.")
def queue_start(jobs: int | None, cluster: str | None, cluster_remote: str | None, fail_fast: bool,
                gpus_per_run: int | None, watch: bool) -> None:  # fmt: skip
    """Run the queued entries, up to N at once, until the queue is empty (or, with --watch,
    for as long as it runs). Entries of a worker that died are queued again first."""
    from gitexp.sweeps.queue import requeue_stale
    from gitexp.sweeps.runner import SweepRequest, executor_for, gpu_slots
    from gitexp.sweeps.scheduler import QueueSource, Scheduler
    from gitexp.sweeps.worktrees import clean_stale_worktrees

    if jobs is not None and jobs < 1:
        raise UsageError("-j needs a number of runs at once of at least 1")
    repo = open_repo()
    clean_stale_worktrees(repo)
    for name in requeue_stale(repo):
        warn(f"{name} was cut off when its worker died; it is queued again")
    request = SweepRequest(command=(), jobs=jobs, cluster=cluster or None, fail_fast=fail_fast,
                           cluster_remote=cluster_remote, gpus_per_run=gpus_per_run)  # fmt: skip
    view = ProgressView(None, None)
    scheduler = Scheduler(repo, executor_for(repo, request, warn), jobs,
                          gpus=gpu_slots(gpus_per_run), fail_fast=fail_fast, watch=watch,
                          on_event=view)  # fmt: skip
    progress = scheduler.run(QueueSource(repo))
    view.close()
    click.echo(view.summary("queue", progress, scheduler.stopping, scheduler.failed_fast, None),
               err=True)  # fmt: skip
    code = 1 if any(f.result.status != "success" for f in progress.finished) else 0
    if scheduler.stopping and not scheduler.failed_fast:
        code = 128 + scheduler.stopping
    sys.exit(code)


@queue_group.command("logs")
@click.argument("name", metavar="RUN")
@click.option("-f", "--follow", is_flag=True, help="Keep printing while the run goes on.")
def queue_logs(name: str, follow: bool) -> None:
    """The output of a queued run: live while it runs, its recorded log once it is done."""
    from gitexp.store.records import read_run_log
    from gitexp.store.snapshot import resolve_target
    from gitexp.sweeps.queue import Lease, list_entries, log_path

    repo = open_repo()
    entry = next((e for e in list_entries(repo) if e.name == name), None)
    path = log_path(repo, name)
    if entry is None or (entry.state == "done" and not path.exists()):
        target = resolve_target(repo, name)
        with repo.batch_reader() as reader:
            record, log = read_run_log(repo, target.rev or "", reader)
        if record is None:
            raise UsageError(f"'{name}' is not in the queue: see 'gitexp queue list'")
        sys.stdout.buffer.write(log)
        return
    if not path.exists():
        click.echo(f"'{name}' is {entry.state}; it has no output yet")
        return
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(65536)
            if chunk:
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
                continue
            if not follow or Lease.read(repo, name) is None:
                return
            time.sleep(0.2)


@queue_group.command("remove")
@click.argument("names", nargs=-1, metavar="[RUN]...")
@click.option("--all", "everything", is_flag=True, help="Remove every entry not running.")
@click.option("--queued", is_flag=True, help="Remove the entries still waiting.")
@click.option("--done", is_flag=True, help="Remove the finished entries (their runs stay).")
@click.option("--failed", is_flag=True, help="Remove the finished entries that did not succeed.")
def queue_remove(names: tuple[str, ...], everything: bool, queued: bool, done: bool,
                 failed: bool) -> None:  # fmt: skip
    """Remove entries from the queue (recorded runs are kept: 'gitexp remove' deletes runs)."""
    from gitexp.sweeps.queue import list_entries, remove

    repo = open_repo()
    entries = list_entries(repo)
    by_name = {e.name: e for e in entries}
    chosen = []
    for name in names:
        if name not in by_name:
            raise UsageError(f"'{name}' is not in the queue: see 'gitexp queue list'")
        if by_name[name].state == "running":
            raise UsageError(f"'{name}' is running: stop it with 'gitexp queue kill {name}'")
        chosen.append(by_name[name])
    for entry in entries:
        status = _status_of(entry)
        if entry.state == "running" or entry in chosen:
            continue
        wanted = (
            everything
            or (queued and entry.state == "queued")
            or (done and entry.state == "done")
            or (failed and entry.state == "done" and status != "success")
        )
        if wanted:
            chosen.append(entry)
    if not (names or everything or queued or done or failed):
        raise UsageError("name the entries to remove, or use --all, --queued, --done or --failed")
    removed = remove(repo, chosen)
    click.echo(f"removed {len(removed)} entr{'y' if len(removed) == 1 else 'ies'} from the queue")


@queue_group.command("kill")
@click.argument("names", nargs=-1, required=True, metavar="RUN...")
def queue_kill(names: tuple[str, ...]) -> None:
    """Stop running entries; each is recorded as interrupted."""
    from gitexp.sweeps.queue import request_kill

    repo = open_repo()
    for name in names:
        request_kill(repo, name)
        click.echo(f"asked the worker to stop '{name}'")
