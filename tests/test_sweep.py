"""Sweeps on this machine: a grid run -j N in worktrees, failures, Ctrl-C, resuming, GPUs and
the Python API. Real git, real processes; the user's workspace is checked byte for byte."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import yaml

import oracle
from conftest import GITEXP, git, run_file, show_json
from gitexp.store.git import Repo
from gitexp.sweeps.worktrees import worktrees_dir

# Reads params.yaml like any training script; fails when seed is 2 and FAIL_SEED2 is set;
# leaves a marker in $MARKS (outside the repository) when it starts.
SWEEP_TRAIN = textwrap.dedent(
    """\
    import json, os, sys, time, uuid, yaml
    p = yaml.safe_load(open("params.yaml"))
    if os.environ.get("MARKS"):
        open(os.path.join(os.environ["MARKS"], uuid.uuid4().hex), "w").write(os.getcwd())
    time.sleep(float(os.environ.get("SLEEP", "0")))
    lr, seed = p["train"]["lr"], p["seed"]
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    json.dump({"acc": round(1 - lr, 6), "loss": lr * seed, "gpus": gpus}, open("metrics.json", "w"))
    print("trained", lr, seed)
    sys.exit(3 if seed == 2 and os.environ.get("FAIL_SEED2") else 0)
    """
)
GRID = ["-S", "train.lr=0.1,0.2,0.3", "-S", "seed=range(1,3)"]
NAMES = [f"g/lr-{lr}-seed-{seed}" for lr in ("0.1", "0.2", "0.3") for seed in (1, 2)]


def sweep(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*GITEXP, "run", *args, "--", sys.executable, "sweep_train.py"],
        cwd=repo, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120,
    )  # fmt: skip


def prepare(repo: Path) -> None:
    """An uncommitted edit and an untracked script: both belong in every run of the sweep."""
    (repo / "sweep_train.py").write_text(SWEEP_TRAIN)
    with open(repo / "train.py", "a") as fh:
        fh.write("# an uncommitted edit\n")


def gitexp_leftovers(repo: Path) -> list[str]:
    """What a finished sweep must not leave: queue refs, worktrees, leases."""
    found = git(repo, "for-each-ref", "--format=%(refname)", "refs/gitexp/").split()
    found += [line for line in git(repo, "worktree", "list").splitlines()[1:]]
    for state in (repo / ".git" / "gitexp" / "queue", worktrees_dir(Repo.discover(repo))):
        found += [str(p) for p in state.rglob("*") if p.is_file()] if state.exists() else []
    return found


def test_grid_of_six_with_two_jobs_records_each_point_and_leaves_the_workspace_alone(
    repo: Path, gitexp
) -> None:
    prepare(repo)
    plain = gitexp("run", "-n", "plain", "--", sys.executable, "sweep_train.py")
    assert plain.returncode == 0, plain.stderr
    before = oracle.take(repo)
    proc = sweep(repo, "-n", "g", *GRID, "-j", "2", env={"SLEEP": "0.5"})
    assert proc.returncode == 0, proc.stderr
    added = oracle.assert_untouched(repo, before, max_new_runs=6)
    assert sorted(added) == sorted(f"refs/runs/{n}" for n in NAMES)
    assert gitexp_leftovers(repo) == []
    head = git(repo, "rev-parse", "HEAD")
    plain_record = json.loads(run_file(repo, "plain", ".gitexp/run.json"))
    spans = []
    for lr in (0.1, 0.2, 0.3):
        for seed in (1, 2):
            name = f"g/lr-{lr}-seed-{seed}"
            params = run_file(repo, name, "params.yaml")
            assert f"lr: {lr}   # learning rate" in params and f"seed: {seed}" in params
            assert json.loads(run_file(repo, name, "metrics.json"))["acc"] == round(1 - lr, 6)
            assert "# an uncommitted edit" in run_file(repo, name, "train.py")
            assert git(repo, "rev-parse", f"refs/runs/{name}^") == head  # base: the user's HEAD
            record = json.loads(run_file(repo, name, ".gitexp/run.json"))
            assert record.keys() == plain_record.keys()  # the shape `gitexp run` records
            assert record["overrides"] == [f"train.lr={lr}", f"seed={seed}"]
            assert record["tags"] == {"sweep": "g"}
            assert record["branch"] == "refs/heads/main" and record["base"] == head
            assert record["status"] == "success"
            spans.append((record["started"], record["ended"]))
    spans.sort()
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False)), "nothing overlapped"
    rows = show_json(gitexp, "--filter", "tags.sweep == 'g'")
    assert len(rows) == 6
    assert "best g/lr-0.1-seed-" in proc.stderr  # acc is best at lr 0.1


def test_a_failing_point_is_recorded_and_the_others_still_run(repo: Path) -> None:
    prepare(repo)
    proc = sweep(repo, "-n", "g", *GRID, "-j", "2", env={"FAIL_SEED2": "1"})
    assert proc.returncode == 1, proc.stderr
    assert "failed (exit 3)" in proc.stderr
    statuses = {}
    for name in NAMES:
        record = json.loads(run_file(repo, name, ".gitexp/run.json"))
        statuses[name] = (record["status"], record["exit_code"])
    assert statuses == {n: ("failed", 3) if n.endswith("seed-2") else ("success", 0) for n in NAMES}
    assert gitexp_leftovers(repo) == []


def test_fail_fast_stops_at_the_first_failure(repo: Path) -> None:
    prepare(repo)
    proc = sweep(repo, "-n", "ff", "-S", "seed=2,1,3", "--fail-fast", env={"FAIL_SEED2": "1"})
    assert proc.returncode == 1
    assert git(repo, "for-each-ref", "--format=%(refname)", "refs/runs/") == "refs/runs/ff/seed-2"
    assert "--fail-fast" in proc.stderr
    assert gitexp_leftovers(repo) == []


def test_ctrl_c_stops_every_run_and_records_them_as_interrupted(repo: Path, tmp_path: Path) -> None:
    prepare(repo)
    marks = tmp_path / "marks"
    marks.mkdir()
    before = oracle.take(repo)
    proc = subprocess.Popen(
        [*GITEXP, "run", "-n", "g", *GRID, "-j", "2", "--", sys.executable, "sweep_train.py"],
        cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "SLEEP": "60", "MARKS": str(marks)}, start_new_session=True,
    )  # fmt: skip
    deadline = time.time() + 60
    while len(list(marks.iterdir())) < 2:
        assert time.time() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    added = oracle.assert_untouched(repo, before, max_new_runs=2)
    assert len(added) == 2
    for ref in added:
        record = json.loads(git(repo, "show", f"{ref}:.gitexp/run.json"))
        assert (record["status"], record["interrupted_by"]) == ("interrupted", "SIGINT")
    assert gitexp_leftovers(repo) == []  # the points that had not started are dropped
    cwds = [p.read_text() for p in marks.iterdir()]
    assert all(c.startswith(tempfile.gettempdir()) and str(repo) not in c for c in cwds)
    leftover = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True)
    assert leftover.stdout == "", "processes of the sweep are still running"


def test_a_sweep_run_again_only_runs_the_points_it_lacks(repo: Path) -> None:
    prepare(repo)
    assert sweep(repo, "-n", "g", "-S", "train.lr=0.1,0.2").returncode == 0
    dry = sweep(repo, "-n", "g", "-S", "train.lr=0.1,0.2,0.3", "--dry-run")
    assert dry.returncode == 0
    lines = dry.stdout.splitlines()
    assert any(ln.split()[:3] == ["g/lr-0.3", "to", "run"] for ln in lines)
    assert any(ln.split()[:2] == ["g/lr-0.1", "recorded"] for ln in lines)
    assert git(repo, "for-each-ref", "refs/runs/g/lr-0.3") == ""  # dry run: nothing ran
    again = sweep(repo, "-n", "g", "-S", "train.lr=0.1,0.2,0.3")
    assert again.returncode == 0, again.stderr
    assert "2 point(s) already recorded" in again.stderr
    runs = git(repo, "for-each-ref", "--format=%(refname)", "refs/runs/").split()
    assert runs == ["refs/runs/g/lr-0.1", "refs/runs/g/lr-0.2", "refs/runs/g/lr-0.3"]


def test_random_points_of_a_big_grid_are_seeded(repo: Path) -> None:
    prepare(repo)
    args = ["-n", "r", "-S", "train.lr=range(0.01,1,0.01)", "-S", "seed=range(100)"]
    first = sweep(repo, *args, "--random", "3", "--seed", "7", "-j", "3")
    assert first.returncode == 0, first.stderr
    names = git(repo, "for-each-ref", "--format=%(refname)", "refs/runs/").split()
    assert len(names) == 3
    assert sweep(repo, *args, "--random", "3", "--seed", "7").returncode == 0
    assert git(repo, "for-each-ref", "--format=%(refname)", "refs/runs/").split() == names


def test_each_run_gets_gpus_of_its_own(repo: Path) -> None:
    prepare(repo)
    env = {"CUDA_VISIBLE_DEVICES": "0,1,2", "SLEEP": "0.5"}
    proc = sweep(repo, "-n", "gpu", "-S", "seed=1,2,3", "--gpus-per-run", "1", "-j", "3", env=env)
    assert proc.returncode == 0, proc.stderr
    gpus = [json.loads(run_file(repo, f"gpu/seed-{s}", "metrics.json"))["gpus"] for s in (1, 2, 3)]
    assert sorted(gpus) == ["0", "1", "2"]
    two = sweep(repo, "-n", "g2", "-S", "seed=1,2", "--gpus-per-run", "2", "-j", "2", env=env)
    assert two.returncode == 0, two.stderr
    assert {json.loads(run_file(repo, f"g2/seed-{s}", "metrics.json"))["gpus"] for s in (1, 2)} == {
        "0,1"
    }
    too_many = sweep(repo, "-n", "g3", "-S", "seed=1,2", "--gpus-per-run", "4", env=env)
    assert too_many.returncode == 2 and "needs at least 4 GPU(s); found 3" in too_many.stderr


def test_bad_overrides_stop_the_sweep_before_anything_runs(repo: Path) -> None:
    prepare(repo)
    before = oracle.take(repo)
    for args in (["-S", "train.nope=1,2"], ["-S", "seed=1,2", "-S", "seed=3,4"],
                 ["-S", "seed=range(0,3,0)"], ["-S", "seed=1,2", "--trials", "2"],
                 ["-n", "-bad", "-S", "seed=1,2"], ["-S", "seed=1,2", "-j", "0"]):  # fmt: skip
        proc = sweep(repo, *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith("gitexp: error: ") and "Traceback" not in proc.stderr
    oracle.assert_untouched(repo, before, max_new_runs=0)


def test_hostile_values_make_valid_names_and_are_never_evaluated(repo: Path) -> None:
    prepare(repo)
    values = "choice('$(touch pwn)', '../x', \"a b\", '--output=x', '\u202e')"
    proc = sweep(repo, "-n", "h", "-S", f"+note={values}", "-j", "2")
    assert proc.returncode == 0, proc.stderr
    names = git(repo, "for-each-ref", "--format=%(refname)", "refs/runs/h/").split()
    assert len(names) == 5
    assert not (repo / "pwn").exists() and not (repo / "x").exists()
    notes = {yaml.safe_load(run_file(repo, n[10:], "params.yaml"))["note"] for n in names}
    assert notes == {"$(touch pwn)", "../x", "a b", "--output=x", "\u202e"}


def test_python_api_sweeps_a_function_and_returns_the_runs(repo: Path) -> None:
    (repo / "experiment.py").write_text(
        textwrap.dedent(
            """\
            import json
            import gitexp

            def train(params):
                lr = params["train"]["lr"]
                return {"acc": 1 - lr, "note": "not a number: left out"}

            if __name__ == "__main__":
                runs = gitexp.sweep(train, {"train.lr": [0.1, 0.5], "seed": 7}, name="api", jobs=2)
                rows = runs.to_dict("records") if hasattr(runs, "to_dict") else runs
                print(json.dumps(sorted((r["run_id"], r["metrics.acc"]) for r in rows)))
                cmd = gitexp.sweep("python -c 'pass'", {"seed": "range(2)"}, name="cmd")
                print(len(cmd))
            """
        )
    )
    proc = subprocess.run([sys.executable, "experiment.py"], cwd=repo, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.splitlines()[-2:]
    assert json.loads(first) == [["api/lr-0.1", 0.9], ["api/lr-0.5", 0.5]]
    assert second == "2"
    record = json.loads(run_file(repo, "api/lr-0.1", ".gitexp/run.json"))
    assert record["command"][-1] == "experiment.py:train"  # reproducible as a command
    assert "seed: 7" in run_file(repo, "api/lr-0.1", "params.yaml")


def test_data_a_sweep_run_stores_outlives_its_worktree(repo: Path, tmp_path: Path) -> None:
    """A run's --out goes to the repository's DVC cache, not the worktree's (which is deleted),
    even when the snapshot has no pointer file yet; push then sends every run's data."""
    assert subprocess.run([*GITEXP, "init"], cwd=repo, capture_output=True).returncode == 0
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "dvc")
    remote = tmp_path / "dvc-remote"
    subprocess.run(["dvc", "remote", "add", "-d", "local", str(remote)], cwd=repo, check=True)
    git(repo, "commit", "-q", "-am", "dvc remote")
    git(repo, "init", "-q", "--bare", str(tmp_path / "origin.git"))
    git(repo, "remote", "add", "origin", str(tmp_path / "origin.git"))
    write = "import os; open('blob.bin', 'wb').write(os.urandom(64))"
    proc = subprocess.run(
        [*GITEXP, "run", "-n", "d", "-j", "2", "-S", "seed=1,2", "--out", "blob.bin", "--",
         sys.executable, "-c", write],
        cwd=repo, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for name in ("d/seed-1", "d/seed-2"):
        pointer = yaml.safe_load(git(repo, "show", f"refs/runs/{name}:blob.bin.dvc"))
        digest = pointer["outs"][0]["md5"]
        assert (repo / ".dvc" / "cache" / "files" / "md5" / digest[:2] / digest[2:]).is_file()
    pushed = subprocess.run([*GITEXP, "push"], cwd=repo, capture_output=True, text=True)
    assert pushed.returncode == 0, pushed.stderr
    assert "2 data object(s)" in pushed.stdout, pushed.stdout
