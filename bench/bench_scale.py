"""Speed at scale, printed beside each target (not a test): 10,000 and 100,000 runs whose
records have the real shape, written with `git fast-import`.

    .venv/bin/python bench/bench_scale.py [--sizes 10000 100000] [--transfer 1000]

Figures: `show --json` (time and peak memory), `show --limit 20`, the first `show` after a
fresh clone (the run index is built), `gitexp run` overhead with the runs present, `push` and
`pull` of runs with a data object each (local remotes), and MLflow's `search_runs` over the same
runs from SQLite when MLflow is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BIN, ENV, GITEXP, sh

WRAPPER = (
    "import resource, subprocess, sys, time; t = time.perf_counter(); "
    "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True); "
    "print(time.perf_counter() - t, "
    "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
)
ENVIRONMENT = json.dumps(
    {"cpu": {"count": 2, "model": "bench"}, "gpu": [], "python": "3.11.7",
     "platform": "Linux", "packages": {f"package-{i}": f"{i}.0" for i in range(150)}},
    sort_keys=True, indent=1,
)  # fmt: skip


def measure(args: list[str], cwd: Path) -> tuple[float, float]:
    """(seconds, peak MB) of one whole process."""
    out = subprocess.run([sys.executable, "-c", WRAPPER, *args], cwd=cwd, env=ENV, check=True,
                         capture_output=True, text=True).stdout.split()  # fmt: skip
    return float(out[0]), float(out[1])


def record(i: int, base: str, model: str | None) -> dict:
    lr = round(0.001 * (1 + i % 97), 6)
    started = f"2026-01-{1 + i // 86_400 % 28:02d}T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:" \
              f"{i % 60:02d}.000+00:00"  # fmt: skip
    data = {"model.pkl": {"hash": model, "size": 64}} if model else {}
    return {
        "version": 2, "name": f"sweep/run-{i:06d}", "command": ["python", "train.py"],
        "status": "success" if i % 17 else "failed", "exit_code": 0 if i % 17 else 1,
        "started": started, "ended": started, "duration": 1.5, "base": base,
        "branch": "refs/heads/main", "author": "Bench <bench@example.com>", "host": "bench",
        "python": "3.11.7", "platform": "Linux", "env": {}, "gitexp": "0.1.0",
        "overrides": [f"train.lr={lr}"], "outs": [], "tags": {"sweep": "lr"}, "message": None,
        "reproduces": None,
        "params": {"params.yaml": {"train.lr": lr, "train.epochs": 15, "train.batch_size": 64,
                                   "model.layers": [64, 32], "data.seed": 42}},
        "metrics": {"dvclive/metrics.json": {"acc": round(0.9 + lr, 6), "loss": round(0.3 - lr, 6),
                                             "f1": round(0.89 + lr, 6)}},
        "errors": {}, "carried": {}, "data": data, "interrupted_by": None, "cwd": ".",
    }  # fmt: skip


def make_runs(repo: Path, count: int, start: int = 0, with_data: bool = False) -> None:
    """`count` runs on HEAD through one git fast-import, then the refs packed."""
    base = sh(["git", "rev-parse", "HEAD"], repo).stdout.decode().strip()
    cache = repo / ".dvc" / "cache" / "files" / "md5"
    lines = [f"blob\nmark :1\ndata {len(ENVIRONMENT.encode())}\n{ENVIRONMENT}\n"]
    for i in range(start, start + count):
        model = None
        pointer = b""
        if with_data:
            content = f"weights {i}".encode()
            model = hashlib.md5(content).hexdigest()
            (cache / model[:2]).mkdir(parents=True, exist_ok=True)
            (cache / model[:2] / model[2:]).write_bytes(content)
            pointer = (
                f"outs:\n- md5: {model}\n  size: {len(content)}\n  hash: md5\n  path: model.pkl\n"
            ).encode()
        body = json.dumps(record(i, base, model), indent=2).encode()
        lines.append(f"blob\nmark :{2 * i + 2}\ndata {len(body)}\n{body.decode()}\n")
        extra = ""
        if with_data:
            lines.append(f"blob\nmark :{2 * i + 3}\ndata {len(pointer)}\n{pointer.decode()}\n")
            extra = f"M 100644 :{2 * i + 3} model.pkl.dvc\n"
        message = f"run sweep/run-{i:06d}: python train.py\n"
        lines.append(
            f"commit refs/runs/sweep/run-{i:06d}\n"
            f"committer Bench <b@example.com> {1767225600 + i} +0000\n"
            f"data {len(message)}\n{message}from {base}\n"
            f"M 100644 :{2 * i + 2} .gitexp/run.json\n"
            f"M 100644 :1 .gitexp/environment.json\n{extra}\n"
        )
    subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, env=ENV, check=True,
                   input="".join(lines).encode())  # fmt: skip
    sh(["git", "pack-refs", "--all"], repo)


def make_repo(root: Path) -> Path:
    repo = root / "repo"
    repo.mkdir(parents=True)
    sh(["git", "init", "-q", "-b", "main"], repo)
    (repo / "params.yaml").write_text("train:\n  lr: 0.001\n")
    (repo / ".gitignore").write_text("/.gitexp/\n")
    sh([str(BIN / "dvc"), "init", "-q"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "-m", "base"], repo)
    return repo


def mlflow_search(count: int, root: Path) -> float | None:
    """MLflow's search_runs of the same number of runs from SQLite, import included."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        return None
    uri = f"sqlite:///{root / 'mlflow.db'}"
    code = (
        "import mlflow, sys; mlflow.set_tracking_uri(sys.argv[1]); c = mlflow.MlflowClient(); "
        "e = mlflow.set_experiment('bench').experiment_id\n"
        "from mlflow.entities import Metric, Param\n"
        "for i in range(int(sys.argv[2])):\n"
        "    r = c.create_run(e); c.log_batch(r.info.run_id, metrics=[Metric('acc', 0.9, 0, 0)],"
        " params=[Param('lr', str(i))]); c.set_terminated(r.info.run_id)\n"
    )
    subprocess.run([sys.executable, "-c", code, uri, str(count)], check=True, env=ENV)
    search = (
        "import mlflow, sys; mlflow.set_tracking_uri(sys.argv[1]); "
        "mlflow.search_runs(search_all_experiments=True)"
    )
    return measure([sys.executable, "-c", search, uri], root)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--transfer", type=int, default=1000, help="runs for push and pull")
    parser.add_argument("--mlflow", action="store_true", help="also time MLflow (slow to fill)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        repo = make_repo(root)
        made = 0
        for size in sorted(args.sizes):
            started = time.perf_counter()
            make_runs(repo, size - made, made)
            made = size
            print(f"== {size:,} runs (written in {time.perf_counter() - started:.1f} s)")
            seconds, peak = measure([*GITEXP, "show", "--json"], repo)  # builds the index
            print(f"first show --json (index built)  {seconds:.2f} s")
            seconds, peak = measure([*GITEXP, "show", "--json"], repo)
            target = "0.5 s, 100 MB" if size <= 10_000 else "3 s"
            shown = f"{seconds:.2f} s, {peak:.0f} MB peak (target {target})"
            print(f"show --json                      {shown}")
            seconds, _ = measure([*GITEXP, "show", "--limit", "20"], repo)
            print(f"show --limit 20                  {seconds:.2f} s (target 0.3 s at 100,000)")
            seconds, _ = measure([*GITEXP, "run", "--", "true"], repo)
            floor, _ = measure(["true"], repo)
            print(f"gitexp run -- true overhead      {seconds - floor:.3f} s (target 0.15 s)")
            sh(["git", "checkout", "-q", "--", "."], repo)
            if size == 10_000:
                clone = root / "clone"
                sh(["git", "clone", "-q", "--no-local", str(repo), str(clone)], root)
                sh(["git", "fetch", "-q", "origin", "+refs/runs/*:refs/runs/*"], clone)
                seconds, _ = measure([*GITEXP, "show", "--json"], clone)
                print(f"first show after a fresh clone   {seconds:.2f} s (target 3 s)")
                shutil.rmtree(clone)
            if args.mlflow:
                theirs = mlflow_search(size, root)
                if theirs is not None:
                    print(f"MLflow search_runs, SQLite       {theirs:.2f} s")
        transfer(root, args.transfer)


def transfer(root: Path, count: int) -> None:
    """push and pull of `count` runs with a data object each, local remotes."""
    repo = make_repo(root / "transfer")
    origin = root / "transfer-origin.git"
    sh(["git", "init", "-q", "--bare", "-b", "main", str(origin)], root)
    sh([str(BIN / "dvc"), "remote", "add", "-d", "store", str(root / "transfer-store")], repo)
    sh(["git", "commit", "-q", "-am", "remote"], repo)
    sh(["git", "remote", "add", "origin", str(origin)], repo)
    sh(["git", "push", "-q", "origin", "main"], repo)
    make_runs(repo, count, with_data=True)
    print(f"== push and pull of {count:,} runs with a data object each")
    seconds, _ = measure([*GITEXP, "push"], repo)
    print(f"gitexp push                      {seconds:.2f} s (target 5 s)")
    clone = root / "transfer-clone"
    sh(["git", "clone", "-q", str(origin), str(clone)], root)
    seconds, _ = measure([*GITEXP, "pull"], clone)
    print(f"gitexp pull                      {seconds:.2f} s (target 5 s)")
    objects = sum(len(files) for _, _, files in os.walk(clone / ".dvc" / "cache" / "files"))
    print(f"  data objects in the clone's cache: {objects:,}")


if __name__ == "__main__":
    main()
