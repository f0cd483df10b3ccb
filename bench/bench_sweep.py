"""Speed of sweeps, printed as figures (not a test): 8 runs of a 1-second command (`sleep 1`) with
`-j 1`, `-j 2` and on a local Dask cluster (a `dask scheduler` and two one-thread workers),
beside `dvc exp run --queue` + `dvc queue start -j 2` on the same project. Each figure is the
wall time of one sweep and its ratio to the ideal 8/N seconds (the goal: within 10%).

    .venv/bin/python bench/bench_sweep.py [--runs 8] [--seconds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from common import BIN, DVC, ENV, GITEXP, git_project, sh


def project(root: Path, seconds: float) -> Path:
    repo = git_project(root / "repo", {"params.yaml": "seed: 0\n"})
    sh([*GITEXP, "init"], repo)
    sh([*DVC, "stage", "add", "-q", "-n", "train", "-p", "seed", f"sleep {seconds}"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "-m", "stage"], repo)
    return repo


def wall(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr}")
    return time.perf_counter() - start


def local_cluster(root: Path) -> tuple[str, list[subprocess.Popen]]:
    dask = str(BIN / "dask")
    info = root / "scheduler.json"
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", str(info)], cwd=root,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)]  # fmt: skip
    while not info.exists():
        time.sleep(0.1)
    for name in ("w1", "w2"):
        (root / name).mkdir()
        procs.append(subprocess.Popen(
            [dask, "worker", "--scheduler-file", str(info), "--nthreads", "1", "--no-dashboard",
             "--local-directory", str(root / name)], cwd=root / name, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, env=ENV,
        ))  # fmt: skip
    from distributed import Client

    address = json.loads(info.read_text())["address"]
    with Client(address) as client:
        client.wait_for_workers(2, timeout=60)
    return address, procs


def dvc_queue(repo: Path, runs: int) -> tuple[float, float]:
    """`dvc exp run --queue` of the grid, then `dvc queue start -j 2` until all have run:
    the whole time, and the time from `queue start`."""
    # DVC starts its queue workers as `dvc` processes found on PATH.
    os.environ["PATH"] = ENV["PATH"] = f"{BIN}{os.pathsep}{ENV['PATH']}"
    start = time.perf_counter()
    sh([*DVC, "exp", "run", "--queue", "-S", f"seed=range({runs})"], repo)
    started = time.perf_counter()
    # (its workers live on, holding inherited pipes: so no captured output here)
    subprocess.run([*DVC, "queue", "start", "-j", "2"], cwd=repo, env=ENV, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        while True:
            out = sh([*DVC, "queue", "status"], repo).stdout.decode()
            if (
                sum(line.split()[-1:] in (["Success"], ["Failed"]) for line in out.splitlines())
                >= runs
            ):
                end = time.perf_counter()
                return end - start, end - started
            time.sleep(0.1)
    finally:
        sh([*DVC, "queue", "stop"], repo)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    n, s = args.runs, args.seconds
    grid = ["-S", f"seed=range({n})"]
    command = ["--", "sleep", f"{s:g}"]
    with tempfile.TemporaryDirectory() as tmp:
        repo = project(Path(tmp), s)
        print(
            f"{n} runs of a {s:g}-second command; ratio = wall time / ideal (ideal = {n}*{s:g}/N)"
        )
        for jobs in (1, 2):
            took = wall([*GITEXP, "run", "-n", f"j{jobs}", *grid, "-j", str(jobs), *command], repo)
            ideal = n * s / jobs
            print(f"gitexp -j {jobs}                    {took:6.2f} s  ideal {ideal:5.2f} s  "
                  f"ratio {took / ideal:.2f}")  # fmt: skip
        cluster_dir = Path(tmp) / "cluster"
        cluster_dir.mkdir()
        address, procs = local_cluster(cluster_dir)
        try:
            took = wall([*GITEXP, "run", "-n", "dask", *grid, "--cluster", address, *command], repo)
        finally:
            for proc in procs:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait()
        ideal = n * s / 2
        print(f"gitexp --cluster (2 workers)     {took:6.2f} s  ideal {ideal:5.2f} s  "
              f"ratio {took / ideal:.2f}")  # fmt: skip
        took, running = dvc_queue(repo, n)
        print(f"dvc exp run --queue + queue -j 2 {took:6.2f} s  ideal {ideal:5.2f} s  "
              f"ratio {took / ideal:.2f} (from queue start: {running:.2f} s, "
              f"ratio {running / ideal:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
