"""Speed of the core loop, printed as figures (not a test): run overhead, show, diff, --help.

Where DVC does the same work (`dvc exp run`, `dvc exp show`, `dvc exp diff`), its figure is
printed beside ours with the ratio, from the same repository in the same process.

    .venv/bin/python bench/bench_core.py [--files 1000] [--runs 1000] [--dvc-exps 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DVC, ENV, GITEXP, sh, timed

TRAIN_PY = (
    "import json, yaml\np = yaml.safe_load(open('params.yaml'))\n"
    "json.dump({'acc': 1 - p['lr'], 'loss': p['lr']}, open('metrics.json', 'w'))\n"
)
METRICS_CMD = [sys.executable, "train.py"]


def make_repo(root: Path, files: int) -> Path:
    repo = root / "repo"
    repo.mkdir()
    sh(["git", "init", "-q", "-b", "main"], repo)
    for i in range(files):
        sub = repo / f"src{i // 100}"
        sub.mkdir(exist_ok=True)
        (sub / f"module{i}.py").write_text(f"VALUE = {i}\n" * 20)
    (repo / "params.yaml").write_text("lr: 0.1\nseed: 1\n")
    (repo / "train.py").write_text(TRAIN_PY)
    (repo / ".gitignore").write_text("/.gitexp/\n")
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "-m", "base"], repo)
    return repo


def plumbing_floor(repo: Path, repeat: int = 5) -> float:
    """The bare git work of a capture: temporary index, add, write-tree, commit-tree, ref."""
    times = []
    for i in range(repeat):
        start = time.perf_counter()
        index = repo / ".git" / "bench-index"
        shutil.copyfile(repo / ".git" / "index", index)
        env = {**ENV, "GIT_INDEX_FILE": str(index)}
        subprocess.run(["git", "add", "-A"], cwd=repo, env=env, check=True)
        tree = subprocess.run(["git", "write-tree"], cwd=repo, env=env, check=True,
                              capture_output=True, text=True).stdout.strip()  # fmt: skip
        commit = sh(["git", "commit-tree", tree, "-p", "HEAD", "-m", "x"], repo).stdout
        commit = commit.decode().strip()
        sh(["git", "update-ref", f"refs/bench/{i}", commit, "0" * 40], repo)
        times.append(time.perf_counter() - start)
        index.unlink()
    delete_refs(repo, "refs/bench/")
    return statistics.median(times)


def delete_refs(repo: Path, prefix: str) -> None:
    listing = sh(["git", "for-each-ref", "--format=delete %(refname)", prefix], repo).stdout
    sh(["git", "update-ref", "--stdin"], repo, input=listing)


def ratio(ours: float, theirs: float) -> str:
    return f"{theirs / ours:.1f}x faster than DVC" if ours < theirs else "slower than DVC"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--dvc-exps", type=int, default=10)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp), args.files)
        print(f"repository: {args.files} files")
        floor = plumbing_floor(repo)
        true_time = timed(["true"], repo)
        run_time = timed([*GITEXP, "run", "--", "true"], repo)
        overhead = run_time - true_time
        print(f"gitexp run -- true           {overhead:6.3f} s overhead (target 0.3 s)")
        print(f"  git plumbing floor         {floor:6.3f} s (temp index, add, write-tree, "
              "commit-tree, update-ref)")  # fmt: skip
        print(f"gitexp --help                {timed([*GITEXP, '--help'], repo):6.3f} s")

        # DVC on the same repository: one experiment of the same command.
        sh([*DVC, "init", "-q"], repo)
        (repo / "dvc.yaml").write_text("stages:\n  noop:\n    cmd: 'true'\n")
        sh(["git", "add", "-A"], repo)
        sh(["git", "commit", "-q", "-m", "dvc"], repo)
        dvc_run = timed([*DVC, "exp", "run", "-q"], repo, repeat=3)
        ours = timed([*GITEXP, "run", "--", "true"], repo, repeat=3)
        print(f"one run of 'true': gitexp {ours:.3f} s, dvc exp run {dvc_run:.3f} s "
              f"({ratio(ours, dvc_run)})")  # fmt: skip

        # show and diff with a few runs and experiments of a real (tiny) metric-writing command
        (repo / "dvc.yaml").write_text(
            f"stages:\n  train:\n    cmd: {sys.executable} train.py\n    deps: [train.py]\n"
            "    params: [lr]\n    metrics: [{metrics.json: {cache: false}}]\n"
        )  # fmt: skip
        sh(["git", "add", "-A"], repo)
        sh(["git", "commit", "-q", "-m", "train stage"], repo)
        sh([*DVC, "exp", "remove", "-A"], repo)
        delete_refs(repo, "refs/runs/")
        for i in range(args.dvc_exps):
            lr = f"0.{i + 1:03d}"
            sh([*DVC, "exp", "run", "-q", "-n", f"d{i}", "-S", f"lr={lr}"], repo)
            sh([*GITEXP, "run", "-n", f"g{i}", "-S", f"lr={lr}", "--", *METRICS_CMD], repo)
        n = args.dvc_exps
        ours, theirs = timed([*GITEXP, "show"], repo), timed([*DVC, "exp", "show"], repo)
        print(f"show {n} runs: gitexp {ours:.3f} s, dvc exp show {theirs:.3f} s "
              f"({ratio(ours, theirs)})")  # fmt: skip
        ours = timed([*GITEXP, "diff", "g0", "g1"], repo)
        theirs = timed([*DVC, "exp", "diff", "d0", "d1"], repo)
        print(f"diff two runs: gitexp {ours:.3f} s (target 0.3 s), dvc exp diff {theirs:.3f} s "
              f"({ratio(ours, theirs)})")  # fmt: skip

        # show at scale: runs made through the library (the same capture as the CLI, minus
        # the interpreter start per run).
        from gitexp.store.git import Repo
        from gitexp.workflows.run import RunRequest, run_experiment

        lib_repo = Repo.discover(repo)
        start = time.perf_counter()
        for i in range(args.runs - n):
            request = RunRequest(
                command=tuple(METRICS_CMD), name=f"bulk{i}", overrides=(f"lr={i / 1e4}",)
            )
            with open(os.devnull, "w") as quiet:
                sys.stdout, saved = quiet, sys.stdout
                try:
                    run_experiment(lib_repo, request, lambda _msg: None)
                finally:
                    sys.stdout = saved
        made = time.perf_counter() - start
        print(f"recorded {args.runs - n} more runs in {made:.1f} s "
              f"({made / max(1, args.runs - n) * 1000:.0f} ms each, command included)")  # fmt: skip
        print(f"gitexp show, {args.runs} runs      {timed([*GITEXP, 'show'], repo, 3):6.3f} s "
              "(target 1 s)")  # fmt: skip
        print(f"gitexp show --json, {args.runs}    "
              f"{timed([*GITEXP, 'show', '--json'], repo, 3):6.3f} s")  # fmt: skip
        print(f"gitexp diff, {args.runs} runs      "
              f"{timed([*GITEXP, 'diff', 'g0', 'g1'], repo, 3):6.3f} s")  # fmt: skip


if __name__ == "__main__":
    main()
