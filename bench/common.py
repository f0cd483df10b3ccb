"""What the bench scripts share: the tools' paths, a fixed git identity, and timing."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
GITEXP = [str(BIN / "gitexp")]
DVC = [str(BIN / "dvc")]
# Python caches compiled modules, as an installed tool's users have it: with
# PYTHONDONTWRITEBYTECODE set, every command would compile gitexp's sources again (about 50 ms).
ENV = {
    **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # as in an activated venv
    "DVC_NO_ANALYTICS": "1",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


def sh(args: list[str], cwd: Path, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, cwd=cwd, env=ENV, check=True, capture_output=True, **kwargs)


def git_project(repo: Path, files: dict[str, str]) -> Path:
    """A new git repository at `repo` whose first commit holds `files`."""
    repo.mkdir()
    sh(["git", "init", "-q", "-b", "main"], repo)
    for name, text in files.items():
        (repo / name).write_text(text)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "-m", "base"], repo)
    return repo


def timed(args: list[str], cwd: Path, repeat: int = 5) -> float:
    """Median wall time of a command, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        sh(args, cwd)
        times.append(time.perf_counter() - start)
    return statistics.median(times)
