"""Speed of data handling, printed as figures (not a test):
- `gitexp run -- true` with an unchanged 200 MB DVC-tracked dataset (target: 0.5 s overhead);
- hashing a new 1 GB dataset into DVC's cache, beside `md5sum` of the same file, as a ratio;
- `gitexp checkout` of a run whose 200 MB of data is in the local cache (target: 2 s);
- `dvc exp run` of the same no-op stage beside ours.

    .venv/bin/python bench/bench_data.py [--dataset-mb 200] [--new-mb 1024]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from common import DVC, GITEXP, sh, timed


def write_random(path: Path, megabytes: int) -> None:
    chunk = os.urandom(1024 * 1024)
    with open(path, "wb") as fh:
        for i in range(megabytes):
            fh.write(chunk[i % 997 :] + chunk[: i % 997])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset-mb", type=int, default=200)
    parser.add_argument("--new-mb", type=int, default=1024)
    args = parser.parse_args()
    gitexp = GITEXP

    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        sh(["git", "init", "-q", "-b", "main"], repo)
        (repo / "params.yaml").write_text("lr: 0.1\n")
        sh(["git", "add", "-A"], repo)
        sh(["git", "commit", "-q", "-m", "base"], repo)
        sh([*gitexp, "init"], repo)
        (repo / "data").mkdir()
        write_random(repo / "data" / "train.bin", args.dataset_mb)
        sh([*DVC, "add", "-q", "data"], repo)
        (repo / "dvc.yaml").write_text("stages:\n  noop:\n    cmd: 'true'\n")
        sh(["git", "add", "-A"], repo)
        sh(["git", "commit", "-q", "-m", "dataset"], repo)
        print(f"repository with a {args.dataset_mb} MB DVC-tracked dataset")

        sh([*gitexp, "run", "--", "true"], repo)  # the first run fills DVC's state cache
        overhead = timed([*gitexp, "run", "--", "true"], repo) - timed(["true"], repo)
        print(f"gitexp run -- true, dataset unchanged   {overhead:6.3f} s overhead (target 0.5 s)")
        ours = timed([*gitexp, "run", "--", "true"], repo)
        theirs = timed([*DVC, "exp", "run", "-q"], repo)
        print(f"one run of 'true': gitexp {ours:.3f} s, dvc exp run {theirs:.3f} s "
              f"({theirs / ours:.1f}x)")  # fmt: skip

        write_random(repo / "new.bin", args.new_mb)
        md5 = timed(["md5sum", "new.bin"], repo, repeat=1)
        start = time.perf_counter()
        sh([*gitexp, "run", "-n", "hashing", "--out", "new.bin", "--", "true"], repo)
        ours = time.perf_counter() - start
        print(
            f"new {args.new_mb} MB output into DVC's cache: gitexp run {ours:.2f} s, "
            f"md5sum alone {md5:.2f} s (ratio {ours / md5:.2f}, the copy into the cache included)"
        )
        (repo / "new.bin").unlink()

        # a run whose dataset differs from the workspace's, then checkout from the local cache
        write_random(repo / "data" / "train.bin", args.dataset_mb)
        sh([*gitexp, "run", "-n", "other-data", "--", "true"], repo)
        sh(["git", "checkout", "-q", "--", "."], repo)
        sh([*DVC, "checkout", "-q", "--force"], repo)
        start = time.perf_counter()
        sh([*gitexp, "checkout", "--force", "other-data"], repo)
        took = time.perf_counter() - start
        print(f"gitexp checkout, {args.dataset_mb} MB of data from the local cache   "
              f"{took:6.3f} s (target 2 s)")  # fmt: skip


if __name__ == "__main__":
    main()
