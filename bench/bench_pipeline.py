"""Speed on a DVC pipeline of the real shape (tests/pipeline.py: four stages with code deps,
params in two files, a cached DVCLive folder, a foreach stage, DVC experiments), printed as
figures beside DVC's own for the same work, as ratios from one run (not a test):

- a run with an override: `gitexp run -S ... -- dvc repro` and `dvc exp run -S ...`
- listing: `gitexp show` and `dvc exp show`
- comparing two experiments: `gitexp diff A B` and `dvc exp diff A B`

    .venv/bin/python bench/bench_pipeline.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import DVC, ENV, GITEXP, sh, timed

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
import pipeline  # noqa: E402 - the same project the tests build


def once(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    sh(args, cwd)
    return time.perf_counter() - start


def ratio(ours: float, theirs: float) -> str:
    if ours <= theirs:
        return f"{theirs / ours:.1f}x faster than DVC"
    return f"{ours / theirs:.1f}x slower than DVC"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = pipeline.build(Path(tmp) / "project", ENV)
        print(
            f"DVC pipeline: {len(pipeline.SOURCES)} scripts, 6 stages (one foreach), "
            "2 DVC experiments"
        )
        ours = min(once([*GITEXP, "run", "-S", f"train.n_est={60 + i}", "--", "dvc", "repro"],
                        repo) for i in range(args.repeat))  # fmt: skip
        theirs = min(once([*DVC, "exp", "run", "-q", "-S", f"train.n_est={70 + i}"], repo)
                     for i in range(args.repeat))  # fmt: skip
        sh(["git", "checkout", "-q", "--", "."], repo)
        sh([*DVC, "checkout", "-q", "-f"], repo)
        print(f"run with an override: gitexp {ours:.3f} s, dvc exp run {theirs:.3f} s "
              f"({ratio(ours, theirs)}; both re-run the changed stages)")  # fmt: skip
        for label, mine, dvcs in (
            ("show", [*GITEXP, "show"], [*DVC, "exp", "show", "--no-pager"]),
            ("diff two experiments", [*GITEXP, "diff", "exp-small", "exp-big"],
             [*DVC, "exp", "diff", "exp-small", "exp-big"]),
        ):  # fmt: skip
            ours, theirs = timed(mine, repo, args.repeat), timed(dvcs, repo, args.repeat)
            print(f"{label}: gitexp {ours:.3f} s, dvc {theirs:.3f} s ({ratio(ours, theirs)})")
        shutil.rmtree(repo, ignore_errors=True)


if __name__ == "__main__":
    main()
