"""`--trials N --optimize METRIC`: Optuna picks each next point from the runs recorded so far.

The study lives in memory and is rebuilt from the sweep's runs in git each time (their
overrides are the params, their record the metric), so a sweep resumed later goes on from
where it stopped, and there is no study database to lock between parallel workers. Every
trial is an ordinary run, `SWEEP/trial-N`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from gitexp.core import yamlio
from gitexp.core.metrics import is_number
from gitexp.errors import GitexpError, UsageError
from gitexp.store.git import Repo
from gitexp.store.index import run_records
from gitexp.store.records import run_names
from gitexp.sweeps import queue
from gitexp.sweeps.grid import Axis, Interval
from gitexp.sweeps.point import SWEEP_TAG
from gitexp.sweeps.queue import Entry, Lease
from gitexp.sweeps.scheduler import Finished

Warn = Callable[[str], None]


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise UsageError("--trials needs Optuna: pip install 'gitexp[optuna]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _value(record: dict[str, Any] | None, metric: str) -> float | None:
    from gitexp.sweeps.runner import metric_of

    if not record or record.get("status") != "success":
        return None
    value = metric_of(record, metric)
    if not is_number(value) or not math.isfinite(value):
        return None
    return float(value)


class Search:
    """An in-memory Optuna study over the sweep's axes."""

    def __init__(self, axes: list[Axis | Interval], metric: str, maximize: bool,
                 seed: int | None) -> None:  # fmt: skip
        if not axes:
            raise UsageError(
                "--trials needs params to search: -S 'train.lr=interval(0.0001,0.1)', "
                "-S 'model.depth=range(2,8)' or -S 'opt=choice(adam,sgd)'"
            )
        optuna = _optuna()
        self.optuna = optuna
        self.metric = metric
        self.axes = axes
        self.distributions: dict[str, Any] = {}
        for axis in axes:
            if isinstance(axis, Interval):
                dist = optuna.distributions.FloatDistribution(axis.low, axis.high, log=axis.log)
            else:
                dist = optuna.distributions.CategoricalDistribution(list(axis.literals))
            self.distributions[axis.target] = dist
        self.study = optuna.create_study(
            direction="maximize" if maximize else "minimize",
            sampler=optuna.samplers.TPESampler(seed=seed),
        )

    def params_of(self, overrides: list[str]) -> dict[str, Any] | None:
        """A recorded run's point, or None when it does not fit the search space."""
        given = dict(o.split("=", 1) for o in overrides if "=" in o)
        params: dict[str, Any] = {}
        for axis in self.axes:
            literal = given.get(axis.target)
            if literal is None:
                return None
            if isinstance(axis, Axis):
                if literal not in axis.literals:
                    return None
                params[axis.target] = literal
                continue
            try:
                value = yamlio.load(literal, "-S")
            except GitexpError:
                return None
            if not is_number(value) or not axis.low <= value <= axis.high:
                return None
            params[axis.target] = float(value)
        return params

    def add_run(self, record: dict[str, Any]) -> bool:
        params = self.params_of(record.get("overrides") or [])
        if params is None:
            return False
        value = _value(record, self.metric)
        state = self.optuna.trial.TrialState
        self.study.add_trial(
            self.optuna.trial.create_trial(
                params=params,
                distributions=self.distributions,
                value=value,
                state=state.COMPLETE if value is not None else state.FAIL,
            )
        )
        return True

    def ask(self) -> tuple[Any, dict[str, str]]:
        trial = self.study.ask(self.distributions)
        literals = {
            target: value if isinstance(value, str) else repr(float(value))
            for target, value in trial.params.items()
        }
        return trial, literals

    def tell(self, trial: Any, record: dict[str, Any] | None) -> None:
        value = _value(record, self.metric)
        if value is None:
            self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, value)


class TrialSource:
    """Proposes the sweep's next point when a worker is free, until N runs exist."""

    def __init__(self, repo: Repo, request: Any, plan: Any, specs: Any, tree: str, base: str,
                 identity: dict[str, str], warn: Warn) -> None:  # fmt: skip
        self.repo, self.specs, self.tree, self.base = repo, specs, tree, base
        self.identity = identity
        self.sweep = plan.name
        self.grid = plan.grid
        with repo.batch_reader() as reader:
            records = [record or {} for _, _, record in run_records(repo, reader)]
        runs = [r for r in records if (r.get("tags") or {}).get(SWEEP_TAG) == self.sweep]
        # A resumed sweep must not replay the random points its first session drew.
        seed = None if request.seed is None else request.seed + 7919 * len(runs)
        self.search = Search(plan.grid.axes, request.optimize, request.maximize, seed)
        skipped = sum(1 for r in runs if not self.search.add_run(r))
        if skipped:
            warn(f"{skipped} run(s) of sweep '{self.sweep}' do not fit its params; not used")
        self.waiting = [
            e for e in queue.list_entries(repo, ("queued",)) if e.spec.sweep == self.sweep
        ]
        self.remaining = max(0, request.trials - len(runs) - len(self.waiting))
        self.trials: dict[str, Any] = {}
        self.order = len(runs) + len(self.waiting)

    def _next_name(self) -> str:
        runs, _ = run_names(self.repo)
        taken = {n.lower() for n in [*runs, *queue.taken_names(self.repo)]}
        number = 1
        while f"{self.sweep}/trial-{number}".lower() in taken:
            number += 1
        return f"{self.sweep}/trial-{number}"

    def take(self) -> tuple[Entry, Lease] | None:
        while self.waiting:
            claimed = queue.claim_leased(self.repo, self.waiting.pop(0))
            if claimed:
                return claimed
        if self.remaining <= 0:
            return None
        from gitexp.sweeps.runner import Point

        trial, literals = self.search.ask()
        name = self._next_name()
        spec = self.specs.make(Point(name, self.grid.overrides(literals)), self.order)
        (entry,) = queue.enqueue(self.repo, self.tree, self.base, [spec], self.identity)
        claimed = queue.claim_leased(self.repo, entry)
        if claimed is None:  # cannot happen unless another worker races us for a new name
            self.search.tell(trial, None)
            return None
        self.order += 1
        self.remaining -= 1
        self.trials[name] = trial
        return claimed

    def pending(self) -> int:
        return self.remaining + len(self.waiting)

    def done(self, finished: Finished) -> None:
        trial = self.trials.pop(finished.entry.name, None)
        if trial is not None:
            self.search.tell(trial, finished.record)
        elif finished.record:
            self.search.add_run(finished.record)

    def exhausted(self) -> bool:
        return self.pending() == 0
