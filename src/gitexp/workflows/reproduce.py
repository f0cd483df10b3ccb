"""`gitexp reproduce`: re-run a recorded run in a separate worktree of its commit and say
whether its metrics come out the same.

The user's workspace is never touched: the re-run happens in a temporary `git worktree` with
the run's code and params exactly as they ran, and its data checked out from DVC's cache (the
worktree shares the repository's cache) or the DVC remote.
"""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitexp.core.metrics import is_number
from gitexp.dvc.data import cache_dir, checkout_data, ensure_in_cache
from gitexp.errors import UsageError
from gitexp.store.git import Repo
from gitexp.store.journal import register_worktree
from gitexp.store.records import read_environment, read_run_log
from gitexp.store.snapshot import Target, read_states, resolve_target
from gitexp.workflows.containment import check_run_tree
from gitexp.workflows.run import RunOutcome, RunRequest, run_experiment
from gitexp.workflows.workspace import pointer_paths

Warn = Callable[[str], None]


@dataclass(frozen=True)
class MetricCheck:
    path: str
    key: str
    old: Any
    new: Any
    matches: bool


@dataclass(frozen=True)
class Reproduction:
    original: str
    outcome: RunOutcome
    checks: list[MetricCheck]
    environment: list[tuple[str, Any, Any]]  # (what, recorded, now) that differ
    worktree: Path | None  # kept with --keep
    log_tail: str = ""  # the end of the re-run's output, shown when it failed

    @property
    def failed(self) -> bool:
        """The re-run's command did not succeed: its metrics are not compared."""
        return self.outcome.status != "success"

    @property
    def reproduced(self) -> bool:
        return not self.failed and all(c.matches for c in self.checks)


def close_enough(old: Any, new: Any, tolerance: float) -> bool:
    """Equal within a relative tolerance for numbers (0 means exactly), equal otherwise."""
    if is_number(old) and is_number(new):
        if isinstance(old, float) and isinstance(new, float) and math.isnan(old):
            return math.isnan(new)
        if old == new:
            return True
        return abs(new - old) <= tolerance * max(abs(old), abs(new))
    return type(old) is type(new) and old == new


def compare_metrics(
    old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]], tolerance: float
) -> list[MetricCheck]:
    checks = []
    for path in sorted(set(old) | set(new)):
        a, b = old.get(path, {}), new.get(path, {})
        for key in dict.fromkeys([*a, *b]):
            matches = key in a and key in b and close_enough(a[key], b[key], tolerance)
            checks.append(MetricCheck(path, key, a.get(key), b.get(key), matches))
    return checks


def environment_changes(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    changes = [
        (field, old.get(field), new.get(field))
        for field in ("python", "platform")
        if old.get(field) != new.get(field)
    ]
    before, after = old.get("packages") or {}, new.get("packages") or {}
    for name in sorted(set(before) | set(after)):
        if before.get(name) != after.get(name):
            changes.append((f"package {name}", before.get(name), after.get(name)))
    return changes


@contextlib.contextmanager
def _worktree(repo: Repo, rev: str, keep: bool) -> Iterator[Path]:
    """A temporary worktree of `rev`; registered so that the next gitexp start removes it
    if this process is killed (row S11)."""
    path = Path(tempfile.mkdtemp(prefix="gitexp-reproduce-"))
    marker = register_worktree(repo, path)
    try:
        repo.git(["worktree", "add", "-q", "--detach", str(path), rev], write=True)
        share_dvc_cache(repo.root, path)
        yield path
    finally:
        if not keep:
            repo.git(["worktree", "remove", "--force", str(path)], write=True, check=False)
            shutil.rmtree(path, ignore_errors=True)
            repo.git(["worktree", "prune"], write=True, check=False)
        marker.unlink(missing_ok=True)


def share_dvc_cache(root: Path, worktree: Path) -> None:
    """The worktree uses the repository's DVC cache and its DVC configuration as it is now
    (remotes, credentials): a run recorded before its DVC remote was committed can still
    fetch its data, and data already in the cache is not copied or fetched again."""
    if not (worktree / ".dvc").is_dir():
        return
    text = ""
    for name in ("config", "config.local"):  # later sections win, as in DVC's own merge
        source = root / ".dvc" / name
        if source.exists():
            text += source.read_text() + "\n"
    if "[cache]" not in text:
        text += f"\n[cache]\n    dir = {cache_dir(root).resolve()}\n"
    (worktree / ".dvc" / "config.local").write_text(text)


def _start(repo: Repo, target: Target, record: dict[str, Any], warn: Warn) -> str:
    """The commit a reproduction starts from: the run's inputs (the workspace as its command
    started) when recorded; older runs only have their outputs."""
    inputs = record.get("inputs")
    if isinstance(inputs, str) and repo.resolve_commit(inputs):
        return inputs
    warn(f"run '{target.run}' has no recorded inputs here (an older gitexp recorded it, or they "
         "were not fetched): re-running from its outputs")  # fmt: skip
    assert target.rev is not None
    return target.rev


def _forced(command: list[str]) -> tuple[str, ...]:
    """`dvc repro` re-runs every stage, never restoring outputs from DVC's run cache: a
    reproduction must execute the command, not find it up to date."""
    if command[:2] == ["dvc", "repro"]:
        extra = [flag for flag in ("--force", "--no-run-cache") if flag not in command]
        return (*command, *extra)
    return tuple(command)


def reproduce(
    repo: Repo,
    spec: str,
    tolerance: float,
    keep: bool,
    warn: Warn,
    progress: Warn = lambda _message: None,
) -> Reproduction:
    if tolerance < 0:
        raise UsageError("--tolerance must be zero or more (a relative difference, e.g. 0.01)")
    target = resolve_target(repo, spec)
    with repo.batch_reader() as reader:
        (state,) = read_states(repo, [target], reader)
    record = state.record
    if target.rev is None or record is None or not target.run:
        raise UsageError(f"'{spec}' is not a run: see 'gitexp show' for the runs there are")
    if not record.get("command"):
        raise UsageError(f"run '{spec}' has no command to re-run (it saved a workspace)")
    check_run_tree(repo, target.rev, spec)
    start = _start(repo, target, record, warn)
    if start != target.rev:
        check_run_tree(repo, start, spec)
    command = _forced(record["command"])
    # The only place gitexp runs a command that came from a run: say what and where first.
    shown = " ".join(shlex.quote(c) for c in command)
    progress(f"re-running {shown} at {start} (the inputs of run {target.run})")
    ensure_in_cache(repo.root, pointer_paths(repo, Target(spec, start, None)))
    original_dir = Path.cwd()
    with _worktree(repo, start, keep) as tree:
        checkout_data(tree)
        os.chdir(tree / (record.get("cwd") or "."))
        try:
            request = RunRequest(
                command=command,
                base=record.get("base"),
                name=_free_name(repo, f"{target.run}-repro"),
                outs=tuple(record.get("outs") or ()),
                tags=dict(record.get("tags") or {}),
                message=f"reproduces {target.run}",
                reproduces=target.run,
            )
            outcome = run_experiment(Repo.discover(tree), request, warn)
        finally:
            os.chdir(original_dir)
    with repo.batch_reader() as reader:
        new_target = resolve_target(repo, outcome.name)
        new_record = read_states(repo, [new_target], reader)[0].record or {}
        environments = [
            read_environment(reader, rev, rec)
            for rev, rec in ((target.rev, record), (new_target.rev, new_record))
            if rev
        ]
        log = read_run_log(repo, new_target.rev or "", reader)[1] if outcome.commit else b""
    failed = outcome.status != "success"
    return Reproduction(
        original=target.run,
        outcome=outcome,
        # A failed re-run wrote no metrics of its own: never compare what it did not write.
        checks=[]
        if failed
        else compare_metrics(
            record.get("metrics") or {}, new_record.get("metrics") or {}, tolerance
        ),
        environment=environment_changes(*environments) if len(environments) == 2 else [],
        worktree=tree if keep else None,
        log_tail=_tail(log) if failed else "",
    )


def _tail(log: bytes, lines: int = 10) -> str:
    text = log.decode("utf-8", "replace").rstrip("\n")
    return "\n".join(text.splitlines()[-lines:])


def _free_name(repo: Repo, stem: str) -> str:
    from gitexp.store.records import run_names

    taken = {n.lower() for n in run_names(repo)[0]}
    number = 1
    while f"{stem}-{number}".lower() in taken:
        number += 1
    return f"{stem}-{number}"


def run_at_commit(
    repo: Repo, rev: str, command: Sequence[str], name: str, warn: Warn
) -> RunOutcome:
    """Runs `command` in a temporary worktree of commit `rev` (its data checked out from the
    shared DVC cache) and records it as a run on that commit; the workspace is untouched."""
    original_dir = Path.cwd()
    with _worktree(repo, rev, keep=False) as tree:
        checkout_data(tree)
        os.chdir(tree)
        try:
            request = RunRequest(command=tuple(command), name=name, message=f"on {rev[:10]}")
            return run_experiment(Repo.discover(tree), request, warn)
        finally:
            os.chdir(original_dir)


def free_name(repo: Repo, stem: str) -> str:
    """`stem-1`, or the next number that no run has."""
    return _free_name(repo, stem)
