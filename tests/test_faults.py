"""Interruptions and crashes (RELIABILITY rows A1, A3, A4, A6, A8): whatever happens, the
workspace comes back as it was and a run ref is complete or absent."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import oracle
from conftest import GITEXP, OUTPUTS, PARAMS, git, run_gitexp
from gitexp.store.faults import APPLY_PHASES, PHASES

RUN = ["run", "-n", "victim", "-S", "train.lr=0.7", "--", sys.executable, "train.py"]


def start(repo: Path, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """gitexp in its own session, as a terminal starts it, so tests signal its group."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.Popen(
        [*GITEXP, *args],
        cwd=repo,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def no_processes_left(pgid: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        assert time.monotonic() < deadline, "a process of the run outlived it"
        time.sleep(0.05)


def test_phase_list_is_complete() -> None:
    """A3 needs every phase tested: a new phase must be added to the list the tests use."""
    source = "".join(
        p.read_text() for p in (Path(__file__).parents[1] / "src" / "gitexp").rglob("*.py")
    )
    # fault_point("...") directly, or phase("...") where fault_point is passed as a callback
    used = set(re.findall(r'(?:fault_point|phase)\("([a-z-]+)"\)', source))
    assert used == set(PHASES) | set(APPLY_PHASES)


@pytest.mark.parametrize("phase", PHASES)
def test_A3_kill_at_every_phase(repo: Path, phase: str) -> None:
    before = oracle.take(repo)
    proc = start(repo, RUN, {"GITEXP_FAULT": f"{phase}:sigkill"})
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    no_processes_left(proc.pid)
    shown = run_gitexp(repo, "show", "--json")  # recovery runs at every start
    assert shown.returncode == 0, shown.stderr
    added = oracle.assert_untouched(repo, before, OUTPUTS)
    assert (repo / "params.yaml").read_text() == PARAMS
    committed = PHASES.index(phase) >= PHASES.index("ref-committed")
    assert bool(added) == committed
    if committed:
        record = json.loads(git(repo, "show", "refs/runs/victim:.gitexp/run.json"))
        assert record["params"]["params.yaml"]["train.lr"] == 0.7
    journaled = PHASES.index("params-journaled") <= PHASES.index(phase)
    if phase == "params-journaled":  # killed before the override was written
        assert "was cut off before it changed any file" in shown.stderr
    elif journaled and PHASES.index(phase) < PHASES.index("params-restored"):
        assert "was cut off; rolled back (files): restored params.yaml" in shown.stderr
    # The name is free again when no run was recorded, and a new run works.
    again = run_gitexp(repo, *RUN)
    assert again.returncode == (2 if committed else 0), again.stderr


def test_A1_kill_9_of_the_whole_group_mid_command(repo: Path) -> None:
    before = oracle.take(repo)
    proc = start(repo, RUN, {"SLEEP": "30"})
    wait_for(repo / "started")
    assert "lr: 0.7" in (repo / "params.yaml").read_text()  # the override is on disk
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    shown = run_gitexp(repo, "show")
    assert "run 'victim' was cut off; rolled back (files): restored params.yaml" in shown.stderr
    oracle.assert_untouched(repo, before, OUTPUTS, max_new_runs=0)
    assert (repo / "params.yaml").read_text() == PARAMS


def test_A2_command_does_not_outlive_a_killed_gitexp(repo: Path) -> None:
    proc = start(repo, RUN, {"SLEEP": "30"})
    wait_for(repo / "started")
    os.kill(proc.pid, signal.SIGKILL)  # gitexp only; the command is orphaned
    proc.communicate(timeout=60)
    no_processes_left(proc.pid)


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
)
def test_A4_A6_interrupt_is_recorded_and_overrides_restored(repo: Path, signum, code) -> None:
    before = oracle.take(repo)
    proc = start(repo, RUN, {"SLEEP": "30"})
    wait_for(repo / "started")
    os.killpg(proc.pid, signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "recorded run 'victim' (interrupted)" in stderr
    added = oracle.assert_untouched(repo, before, OUTPUTS)
    assert list(added) == ["refs/runs/victim"]
    record = json.loads(git(repo, "show", "refs/runs/victim:.gitexp/run.json"))
    assert record["status"] == "interrupted"
    assert record["interrupted_by"] == signal.Signals(signum).name
    assert "Status: interrupted" in git(repo, "log", "-1", "--format=%B", "refs/runs/victim")
    assert (repo / "params.yaml").read_text() == PARAMS


def test_A5_second_ctrl_c_does_not_cut_the_restore_short(repo: Path) -> None:
    before = oracle.take(repo)
    proc = start(repo, RUN, {"SLEEP": "30"})
    wait_for(repo / "started")
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.1)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    oracle.assert_untouched(repo, before, OUTPUTS)


def test_A8_stale_gitexp_lock_is_reclaimed(repo: Path) -> None:
    lock = repo / ".git" / "gitexp" / "run.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"name": "dead", "pid": 999999}))
    proc = run_gitexp(repo, *RUN)
    assert proc.returncode == 0, proc.stderr
    assert "waiting" not in proc.stderr


def test_A8_stale_git_ref_lock_is_reported_and_kept(repo: Path) -> None:
    ref_lock = repo / ".git" / "refs" / "runs" / "victim.lock"
    ref_lock.parent.mkdir(parents=True)
    ref_lock.write_text("")
    before = oracle.take(repo)
    proc = run_gitexp(repo, *RUN)
    assert proc.returncode == 3
    assert "victim.lock" in proc.stderr and "File exists" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert ref_lock.exists()
    ref_lock.unlink()
    oracle.assert_untouched(repo, before, OUTPUTS, max_new_runs=0)
    assert (repo / "params.yaml").read_text() == PARAMS


def test_A7_crash_inside_gitexp_rolls_back(repo: Path) -> None:
    before = oracle.take(repo)
    proc = run_gitexp(repo, *RUN, env={"GITEXP_FAULT": "tree-written:raise"})
    assert proc.returncode != 0
    oracle.assert_untouched(repo, before, OUTPUTS, max_new_runs=0)


def test_R4_disk_full_writing_the_journal(repo: Path) -> None:
    before = oracle.take(repo)
    proc = run_gitexp(repo, *RUN, env={"GITEXP_FAULT": "params-journaled:enospc"})
    assert proc.returncode == 4
    assert "No space left on device" in proc.stderr
    assert not (repo / "started").exists()
    oracle.assert_untouched(repo, before, max_new_runs=0)


def test_ctrl_c_while_waiting_for_another_run_starts_nothing(repo: Path) -> None:
    first = start(repo, ["run", "-n", "first", "--", sys.executable, "train.py"], {"SLEEP": "30"})
    wait_for(repo / "started")
    (repo / "started").unlink()
    second = start(repo, ["run", "-n", "second", "-S", "seed=3", "--", "true"])
    assert second.stderr is not None
    assert "waiting for run first" in second.stderr.readline()  # gitexp's first line
    os.killpg(second.pid, signal.SIGINT)
    _, stderr = second.communicate(timeout=60)
    assert second.returncode == 130
    assert "run 'second' was not started: interrupted while waiting" in stderr
    os.killpg(first.pid, signal.SIGINT)
    first.communicate(timeout=60)
    assert "seed: 1" in (repo / "params.yaml").read_text()
    assert git(repo, "for-each-ref", "--format=%(refname)", "refs/runs/") == "refs/runs/first"
