"""Returning to a past run: checkout, apply and branch (rows W1, W2, W4, W6)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import oracle
from conftest import PARAMS, git, run_file, show_json

MODEL = "import sys; open('model.bin', 'w').write('weights-' + sys.argv[1])"


@pytest.fixture
def runs(repo: Path, gitexp) -> Path:
    """Two runs: 'fast' changes train.lr and train.py, 'slow' changes train.lr."""
    assert gitexp("init").returncode == 0
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "init")
    (repo / "train.py").write_text((repo / "train.py").read_text() + "# fast variant\n")
    proc = gitexp("run", "-n", "fast", "-S", "train.lr=0.5", "--", sys.executable, "train.py")
    assert proc.returncode == 0, proc.stderr
    git(repo, "checkout", "-q", "--", "train.py")
    (repo / "metrics.json").unlink()
    (repo / "started").unlink()
    return repo


def test_checkout_makes_the_workspace_the_run(runs: Path, gitexp) -> None:
    proc = gitexp("checkout", "fast")
    assert proc.returncode == 0, proc.stderr
    assert git(runs, "rev-parse", "HEAD") == git(runs, "rev-parse", "refs/runs/fast")
    assert git(runs, "symbolic-ref", "-q", "HEAD", check=False) == ""  # detached
    assert "lr: 0.5" in (runs / "params.yaml").read_text()
    assert (runs / "train.py").read_text().endswith("# fast variant\n")
    assert git(runs, "status", "--porcelain") == ""


def test_W1_dirty_workspace_is_refused_without_force(runs: Path, gitexp) -> None:
    (runs / "train.py").write_text("print('my edit')\n")
    (runs / "notes.txt").write_text("unrelated\n")
    before = oracle.take(runs)
    for command in ("checkout", "apply"):
        proc = gitexp(command, "fast")
        assert proc.returncode == 3
        assert "would overwrite uncommitted changes in train.py" in proc.stderr
        assert "--force" in proc.stderr
        oracle.assert_untouched(runs, before, max_new_runs=0)


def test_W2_force_saves_the_work_first_and_it_can_be_brought_back(runs: Path, gitexp) -> None:
    (runs / "train.py").write_text("print('my edit')\n")
    proc = gitexp("apply", "fast", "--force")
    assert proc.returncode == 0, proc.stderr
    saved = proc.stderr.split("saved your uncommitted changes (worktree and index) as run '")[
        1
    ].split("'")[0]
    assert run_file(runs, saved, "train.py") == "print('my edit')"
    assert (runs / "train.py").read_text().endswith("# fast variant\n")
    git(runs, "checkout", "-q", "--", ".")
    assert gitexp("apply", saved).returncode == 0
    assert (runs / "train.py").read_text() == "print('my edit')\n"
    assert show_json(gitexp, saved)[0]["status"] == "saved"


def test_W4_apply_is_complete_and_keeps_head_branch_and_index(runs: Path, gitexp) -> None:
    before = oracle.take(runs)
    proc = gitexp("apply", "fast")
    assert proc.returncode == 0, proc.stderr
    after = oracle.take(runs)
    assert after.head == before.head and after.symbolic_head == before.symbolic_head
    assert after.index_logical == before.index_logical  # changes are unstaged
    # every file of the run is on disk byte for byte (its record aside)
    for path in git(runs, "ls-tree", "-r", "--name-only", "refs/runs/fast").splitlines():
        if not path.startswith(".gitexp/"):
            blob = subprocess.run(["git", "cat-file", "blob", f"refs/runs/fast:{path}"],
                                  cwd=runs, capture_output=True, check=True).stdout  # fmt: skip
            assert (runs / path).read_bytes() == blob, path
    assert (runs / "params.yaml").read_text() == PARAMS.replace("0.1", "0.5")


def test_W6_data_is_checked_out_and_missing_data_is_a_clear_error(runs: Path, gitexp) -> None:
    proc = gitexp("run", "-n", "model", "--out", "model.bin", "--", sys.executable, "-c",
                  MODEL, "1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (runs / "model.bin").unlink()
    assert gitexp("checkout", "model").returncode == 0
    assert (runs / "model.bin").read_text() == "weights-1"
    git(runs, "checkout", "-q", "main")
    (runs / "model.bin").unlink()
    shutil.rmtree(runs / ".dvc" / "cache")
    proc = gitexp("apply", "model")
    assert proc.returncode == 3
    assert "model.bin not in the local DVC cache" in proc.stderr
    assert "no DVC remote is configured" in proc.stderr
    assert git(runs, "status", "--porcelain") == ""  # nothing half-applied


def test_branch_is_ready_for_a_pull_request(runs: Path, gitexp) -> None:
    proc = gitexp("branch", "fast", "try-fast")
    assert proc.returncode == 0, proc.stderr
    files = git(runs, "ls-tree", "-r", "--name-only", "try-fast").splitlines()
    assert ".gitexp/run.json" not in files and "params.yaml" in files
    assert git(runs, "rev-parse", "try-fast^") == git(runs, "rev-parse", "main")
    assert git(runs, "rev-parse", "try-fast^{tree}") != git(
        runs, "rev-parse", "refs/runs/fast^{tree}"
    )
    assert gitexp("branch", "fast", "try-fast").returncode == 2  # exists
    assert gitexp("branch", "fast", "bad..name").returncode == 2
    assert gitexp("branch", "nope", "x").returncode == 2


def test_checkout_refuses_while_a_run_holds_the_workspace(runs: Path, gitexp) -> None:
    from gitexp.store.git import Repo
    from gitexp.store.journal import RunLock

    lock = RunLock(Repo.discover(runs))
    lock.acquire("busy")
    try:
        proc = gitexp("checkout", "fast")
        assert proc.returncode == 3 and "is in progress" in proc.stderr
    finally:
        lock.release()


def test_W3_kill_during_apply_is_rolled_back_at_the_next_start(runs: Path, gitexp) -> None:
    before = oracle.take(runs)
    proc = gitexp("apply", "fast", env={"GITEXP_FAULT": "apply-written:sigkill"})
    assert proc.returncode == -9
    shown = gitexp("show")
    assert (
        "apply of 'fast' was cut off; rolled back (files): restored metrics.json, "
        "params.yaml, started, train.py" in shown.stderr
    )
    oracle.assert_untouched(runs, before, max_new_runs=0)
    assert gitexp("apply", "fast").returncode == 0  # and it can be done again
    assert (runs / "train.py").read_text().endswith("# fast variant\n")
