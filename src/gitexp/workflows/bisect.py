"""`gitexp bisect`: the first commit where a metric regressed, between a good and a bad one.

A commit's value comes from the run recorded on it where there is one (free), and otherwise
from running the command on it, like `git bisect run`, in a temporary worktree, recorded as a
run so that the next bisect or `report --history` has it. A commit whose value cannot be had
(the command fails, the metric is missing) is skipped, as `git bisect skip` would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gitexp.core.config import load_config
from gitexp.core.metrics import is_number
from gitexp.errors import UsageError
from gitexp.report.gather import direction
from gitexp.report.history import CommitPoint, commit_points, history_keys
from gitexp.store.git import Repo
from gitexp.store.records import RunInfo
from gitexp.store.schema import load_record
from gitexp.store.snapshot import RECORD_PATH, read_workspace_file
from gitexp.workflows.reproduce import free_name, run_at_commit

Warn = Callable[[str], None]


@dataclass(frozen=True)
class Probe:
    sha: str
    subject: str
    value: Any
    source: str  # 'run NAME', 'ran NAME', or why there is no value
    verdict: str  # 'good', 'bad' or 'skip'


@dataclass
class Bisection:
    metric: str
    goal: str  # 'max' (higher is better) or 'min'
    threshold: float
    probes: list[Probe] = field(default_factory=list)
    first_bad: Probe | None = None
    candidates: list[tuple[str, str]] = field(default_factory=list)  # when skips hide it
    tested: int = 0  # commits between good and bad
    reran: int = 0


class _Values:
    """Values of commits, from recorded runs or by running the command, each found once."""

    def __init__(self, repo: Repo, metric: str, command: Sequence[str] | None, warn: Warn,
                 progress: Warn) -> None:  # fmt: skip
        self.repo, self.metric, self.command = repo, metric, command
        self.warn, self.progress = warn, progress
        self.found: dict[str, tuple[Any, str]] = {}
        self.reran = 0

    def recorded(self, point: CommitPoint) -> tuple[Any, str] | None:
        value = point.value(self.metric)
        if point.run is not None and is_number(value):
            return value, f"run {point.run.name}"
        return None

    def of(self, point: CommitPoint) -> tuple[Any, str]:
        if point.sha in self.found:
            return self.found[point.sha]
        result = self.recorded(point)
        if result is None:
            result = self._run(point)
        self.found[point.sha] = result
        return result

    def _run(self, point: CommitPoint) -> tuple[Any, str]:
        if not self.command:
            return None, "no run recorded (give the command to run it: -- COMMAND)"
        name = free_name(self.repo, f"bisect-{point.sha[:7]}")
        self.progress(f"running {' '.join(self.command)} at {point.sha[:10]} as run {name}")
        outcome = run_at_commit(self.repo, point.sha, self.command, name, self.warn)
        self.reran += 1
        if outcome.commit is None or outcome.status != "success":
            return None, f"ran {name}: {outcome.status}"
        with self.repo.batch_reader() as reader:
            data = reader.read(f"{outcome.commit}:{RECORD_PATH}")
        run = RunInfo(name, outcome.commit, load_record(data)[0] if data else None)
        value = CommitPoint(point.sha, point.subject, run).value(self.metric)
        if not is_number(value):
            return None, f"ran {name}: no {self.metric}"
        return value, f"ran {name}"


def bisect(
    repo: Repo,
    metric: str,
    good: str,
    bad: str,
    threshold: float | None,
    command: Sequence[str] | None,
    warn: Warn,
    progress: Warn,
) -> Bisection:
    good_sha, bad_sha = (
        _commit(repo, spec, flag) for spec, flag in ((good, "--good"), (bad, "--bad"))
    )
    if repo.git(["merge-base", "--is-ancestor", good_sha, bad_sha], check=False).returncode:
        raise UsageError(f"--good {good} is not an ancestor of --bad {bad}")
    points = commit_points(repo, f"{good_sha}^!", metric)  # the good commit itself
    points += commit_points(repo, f"{good_sha}..{bad_sha}", metric)
    if len(points) < 2:
        raise UsageError("--good and --bad are the same commit: nothing to bisect")
    if not command and any(p.run for p in points):
        history_keys(points, metric)  # a metric no run of the range has is a typo: say so
    values = _Values(repo, metric, command, warn, progress)
    ends = []
    for point, flag in ((points[0], "--good"), (points[-1], "--bad")):
        value, source = values.of(point)
        if not is_number(value):
            raise UsageError(
                f"no value of {metric} at {flag} {point.sha[:10]} ({source}): record a run "
                "there, or give the command to run: gitexp bisect ... -- COMMAND"
            )
        ends.append(value)
    good_value, bad_value = ends
    config = load_config(lambda p: read_workspace_file(repo, p))
    goal = direction(metric, config.directions) or ("max" if bad_value < good_value else "min")
    limit = threshold if threshold is not None else (good_value + bad_value) / 2

    def is_bad(value: float) -> bool:
        return value < limit if goal == "max" else value > limit

    if not is_bad(bad_value):
        raise UsageError(
            f"{metric} at --bad is {bad_value}, not worse than the threshold {limit:g} "
            f"({'higher' if goal == 'max' else 'lower'} is better): nothing regressed"
        )
    if is_bad(good_value):
        raise UsageError(f"{metric} at --good is {good_value}, already worse than {limit:g}")
    result = Bisection(metric, goal, limit, tested=len(points) - 2)
    verdicts: dict[int, str] = {0: "good", len(points) - 1: "bad"}
    # Recorded runs first: they cost nothing and narrow the range before anything runs.
    for index, point in enumerate(points[1:-1], 1):
        found = values.recorded(point)
        if found is not None:
            values.found[point.sha] = found
            verdicts[index] = "bad" if is_bad(found[0]) else "good"
    low, high = _bounds(verdicts, len(points))
    while high - low > 1:
        middle = _next_probe(low, high, verdicts)
        if middle is None:
            break
        value, _ = values.of(points[middle])
        verdicts[middle] = "skip" if not is_number(value) else ("bad" if is_bad(value) else "good")
        low, high = _bounds(verdicts, len(points))
    for index in sorted(verdicts):
        point = points[index]
        value, source = values.found.get(point.sha, (None, ""))
        result.probes.append(Probe(point.sha, point.subject, value, source, verdicts[index]))
    if all(verdicts.get(i) == "skip" for i in range(low + 1, high)):
        if high - low == 1:
            result.first_bad = next(p for p in result.probes if p.sha == points[high].sha)
        else:
            result.candidates = [(p.sha, p.subject) for p in points[low + 1 : high + 1]]
    result.reran = values.reran
    return result


def _commit(repo: Repo, spec: str, flag: str) -> str:
    sha = repo.resolve_commit(spec)
    if sha is None:
        raise UsageError(f"{flag} {spec}: no such commit")
    return sha


def _bounds(verdicts: dict[int, str], count: int) -> tuple[int, int]:
    """The first bad commit lies in (low, high]: high is the earliest bad one, low the
    latest good one before it."""
    high = min(i for i, v in verdicts.items() if v == "bad")
    low = max(i for i, v in verdicts.items() if v == "good" and i < high)
    return low, high


def _next_probe(low: int, high: int, verdicts: dict[int, str]) -> int | None:
    """The untested commit nearest the middle of (low, high)."""
    middle = (low + high) // 2
    untested = [i for i in range(low + 1, high) if i not in verdicts]
    return min(untested, key=lambda i: (abs(i - middle), i)) if untested else None
