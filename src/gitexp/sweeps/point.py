"""One point of a sweep, run in its worktree exactly as `gitexp run` runs a command.

`run_point` is called in a forked worker process on this machine. On a Dask worker the same
function runs as `python -m gitexp.sweeps.point SPEC ROOT RESULT`, so that the run has a
process (and signal handlers) of its own.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gitexp.errors import GitexpError
from gitexp.store.git import Repo
from gitexp.sweeps.queue import EntrySpec
from gitexp.workflows.run import RunOutcome, RunRequest, run_experiment

SWEEP_TAG = "sweep"


def request_of(spec: EntrySpec) -> RunRequest:
    tags = dict(spec.tags)
    if spec.sweep:
        tags.setdefault(SWEEP_TAG, spec.sweep)
    return RunRequest(
        command=spec.command,
        name=spec.name,
        overrides=spec.overrides,
        tags=tags,
        message=spec.message,
        record_failed=spec.record_failed,
        outs=spec.outs,
        branch=spec.branch,
    )


def run_point(root: Path, spec: EntrySpec, warn: Callable[[str], None],
              on_step: Callable[[str], None] | None = None) -> RunOutcome:  # fmt: skip
    """Runs the entry in the worktree at `root`, from the directory it was queued from."""
    workdir = root / spec.cwd
    os.chdir(workdir if workdir.is_dir() else root)
    request = dataclasses.replace(request_of(spec), on_step=on_step)
    return run_experiment(Repo.discover(root), request, warn)


def outcome_json(outcome: RunOutcome | None, error: GitexpError | None = None) -> dict[str, Any]:
    if error is not None:
        status = "interrupted" if error.exit_code == 130 else "error"
        return {"status": status, "exit_code": error.exit_code, "commit": None,
                "error": str(error)}  # fmt: skip
    assert outcome is not None
    return {"status": outcome.status, "exit_code": outcome.exit_code, "commit": outcome.commit,
            "error": None}  # fmt: skip


def main(argv: list[str]) -> int:
    spec_path, root, result_path = argv
    spec = EntrySpec.from_json(Path(spec_path).read_text())

    def warn(message: str) -> None:
        print(f"gitexp: warning: {message}", file=sys.stderr, flush=True)

    try:
        result = outcome_json(run_point(Path(root), spec, warn))
    except GitexpError as exc:
        print(f"gitexp: error: {exc}", file=sys.stderr, flush=True)
        result = outcome_json(None, exc)
    Path(result_path).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
