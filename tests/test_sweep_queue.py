"""The queue: runs stored in git, drained by `gitexp queue start`, after a killed worker too,
by two workers at once exactly once, and stopped one by one with `queue kill`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import oracle
from conftest import GITEXP, git, run_file
from test_sweep import SWEEP_TRAIN, gitexp_leftovers


def queue(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*GITEXP, "run", "--queue", *args, "--", sys.executable,
                           "sweep_train.py"], cwd=repo, capture_output=True, text=True)  # fmt: skip


def start(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [*GITEXP, "queue", "start", *args], cwd=repo, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
        start_new_session=True,
    )  # fmt: skip


def entries(gitexp) -> list[dict]:
    proc = gitexp("queue", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def queue_and_start(
    repo: Path, tmp_path: Path, name: str, grid: str, *args: str
) -> tuple[subprocess.Popen, Path]:
    """Queues the sweep `name` of `grid` and starts a worker whose runs sleep a minute, each
    leaving a mark in the returned directory when it starts."""
    (repo / "sweep_train.py").write_text(SWEEP_TRAIN)
    assert queue(repo, "-n", name, "-S", grid).returncode == 0
    marks = tmp_path / "marks"
    marks.mkdir()
    return start(repo, *args, env={"SLEEP": "60", "MARKS": str(marks)}), marks


def wait_for(marks: Path, count: int, proc: subprocess.Popen) -> None:
    deadline = time.time() + 60
    while len(list(marks.iterdir())) < count:
        assert time.time() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)


def run_refs(repo: Path) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname)", "refs/runs/").split()


def test_a_queue_is_stored_in_git_and_started_later(repo: Path, gitexp) -> None:
    (repo / "sweep_train.py").write_text(SWEEP_TRAIN)
    before = oracle.take(repo)
    proc = queue(repo, "-n", "q", "-S", "seed=1,2,3", "-S", "train.lr=0.1,0.2")
    assert proc.returncode == 0, proc.stderr
    assert "queued 6 run(s) of sweep 'q'" in proc.stderr
    assert run_refs(repo) == []
    listed = entries(gitexp)
    assert [e["status"] for e in listed] == ["queued"] * 6
    assert listed[0]["run"] == "q/seed-1-lr-0.1" and listed[0]["overrides"] == "seed=1 train.lr=0.1"
    assert gitexp("queue", "status").stdout.strip() == "6 queued"
    # The queue holds the workspace as it was: a later edit does not reach its runs.
    (repo / "sweep_train.py").write_text("raise SystemExit('edited later')\n")
    (repo / "params.yaml").write_text(
        (repo / "params.yaml").read_text().replace("epochs: 3", "epochs: 9")
    )
    drained = start(repo, "-j", "2")
    _, err = drained.communicate(timeout=120)
    assert drained.returncode == 0, err
    assert len(run_refs(repo)) == 6
    assert "epochs: 3" in run_file(repo, "q/seed-3-lr-0.2", "params.yaml")
    assert "seed: 3" in run_file(repo, "q/seed-3-lr-0.2", "params.yaml")
    assert [e["status"] for e in entries(gitexp)] == ["success"] * 6
    log = gitexp("queue", "logs", "q/seed-2-lr-0.1")
    assert log.returncode == 0 and "trained 0.1 2" in log.stdout
    assert gitexp("queue", "remove", "--done").stdout.strip() == "removed 6 entries from the queue"
    assert entries(gitexp) == [] and gitexp_leftovers(repo) == []
    (repo / "sweep_train.py").write_text(SWEEP_TRAIN)
    (repo / "params.yaml").write_text(
        (repo / "params.yaml").read_text().replace("epochs: 9", "epochs: 3")
    )
    oracle.assert_untouched(repo, before, max_new_runs=6)


def test_a_killed_worker_leaves_nothing_half_done_and_the_next_start_finishes(
    repo: Path, gitexp, tmp_path: Path
) -> None:
    worker, marks = queue_and_start(repo, tmp_path, "k", "seed=1,2,3,4", "-j", "2")
    wait_for(marks, 2, worker)
    os.kill(worker.pid, signal.SIGKILL)  # the worker alone: its runs must not outlive it
    worker.communicate(timeout=30)
    deadline = time.time() + 20
    while subprocess.run(["pgrep", "-s", str(worker.pid)], capture_output=True).stdout:
        assert time.time() < deadline, "the killed worker's runs are still running"
        time.sleep(0.1)
    assert run_refs(repo) == []  # never half recorded
    status = gitexp("queue", "status").stdout
    assert status.splitlines() == [  # two running and two prepared to run next
        "4 running",
        "4 running for a worker that died ('gitexp queue start' queues them again)",
    ]
    again = start(repo, "-j", "2")
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert err.count("is queued again") == 4
    assert run_refs(repo) == [f"refs/runs/k/seed-{i}" for i in (1, 2, 3, 4)]
    assert [e["status"] for e in entries(gitexp)] == ["success"] * 4
    assert git(repo, "worktree", "list").count("\n") == 0


def test_two_workers_drain_one_queue_and_each_run_happens_once(repo: Path, gitexp) -> None:
    (repo / "sweep_train.py").write_text(SWEEP_TRAIN)
    assert queue(repo, "-n", "two", "-S", "seed=range(1,9)").returncode == 0
    workers = [start(repo, "-j", "2", env={"SLEEP": "0.2"}) for _ in range(2)]
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
    assert run_refs(repo) == sorted(f"refs/runs/two/seed-{i}" for i in range(1, 9))
    done = entries(gitexp)
    assert len(done) == 8 and {e["status"] for e in done} == {"success"}
    # each run's log says one worker ran it (a run done twice would have failed to record)
    for i in range(1, 9):
        assert gitexp("queue", "logs", f"two/seed-{i}").stdout.count("trained") == 1


def test_queue_kill_stops_one_run_and_logs_follow_a_running_one(
    repo: Path, gitexp, tmp_path: Path
) -> None:
    worker, marks = queue_and_start(repo, tmp_path, "kl", "seed=1,2", "-j", "2", "--watch")
    wait_for(marks, 2, worker)
    log = gitexp("queue", "logs", "kl/seed-1")
    assert log.returncode == 0 and "gitexp: running kl/seed-1" in log.stdout
    assert gitexp("queue", "remove", "kl/seed-1").returncode == 2  # running: kill it first
    killed = gitexp("queue", "kill", "kl/seed-1")
    assert killed.returncode == 0, killed.stderr
    deadline = time.time() + 60
    while "refs/runs/kl/seed-1" not in run_refs(repo):
        assert time.time() < deadline
        time.sleep(0.1)
    record = json.loads(run_file(repo, "kl/seed-1", ".gitexp/run.json"))
    assert (record["status"], record["interrupted_by"]) == ("interrupted", "SIGTERM")
    # --watch keeps the worker for new entries: one queued now runs too
    assert queue(repo, "-n", "late").returncode == 0
    wait_for(marks, 3, worker)
    os.killpg(worker.pid, signal.SIGINT)
    _, err = worker.communicate(timeout=60)
    assert worker.returncode == 130, err
    statuses = {e["run"]: e["status"] for e in entries(gitexp)}
    assert statuses == {"kl/seed-1": "interrupted", "kl/seed-2": "interrupted",
                        "late": "interrupted"}  # fmt: skip
    assert gitexp("queue", "kill", "kl/seed-2").returncode == 2  # not running any more
