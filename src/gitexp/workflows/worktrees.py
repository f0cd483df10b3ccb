"""The snapshot a sweep starts from, and the worktrees its points run in.

The snapshot is the tree `gitexp run` would record before the command runs: tracked and
untracked files as on disk (uncommitted edits included), DVC-tracked data committed to DVC's
cache, taken once through a temporary index, so the user's workspace is only read.

A point runs in a worktree of its own under `.git/gitexp/queue/worktrees/`: HEAD detached at
the user's commit, files and index as the snapshot, DVC's cache shared with the repository.
So the run's parent is the user's HEAD and its tree what a run in the workspace would have
had; the user's workspace, index and branch are never involved.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from gitexp.core.config import RESERVED_DIR
from gitexp.store.git import Repo
from gitexp.workflows.capture import check_workspace_files, data_blobs
from gitexp.workflows.queue import state_dir

Warn = Callable[[str], None]
DEFAULT_MAX_FILE_BYTES = 10 * 1024 * 1024
_counter = itertools.count(1)


def snapshot_tree(repo: Repo, max_file_bytes: int, warn: Warn) -> str:
    """The workspace as a tree; large files stop it and secret-looking files are left out,
    as in a run's capture (rows G7, G8)."""
    with repo.temp_index() as index:
        excludes = [RESERVED_DIR]
        excludes += check_workspace_files(repo, index, excludes, max_file_bytes, warn)
        files, _ = data_blobs(repo, index, [], lambda _phase: None)
        index.add_all(excludes)
        index.add_blobs(repo.write_blob_data(files))
        return index.write_tree()


def has_data(repo: Repo, tree: str) -> bool:
    """Whether a tree has DVC pointer files, whose data a worktree needs checked out."""
    out = repo.git(["ls-tree", "-r", "--name-only", "-z", tree]).stdout
    return any(p.endswith(b".dvc") or p.endswith(b"dvc.lock") for p in out.split(b"\0"))


def _root(repo: Repo) -> Path:
    return state_dir(repo) / "worktrees"


@contextlib.contextmanager
def point_worktree(
    repo: Repo, base: str, tree: str, data: bool, remove: Callable[[Callable[[], None]], None] = (
        lambda cleanup: cleanup())
) -> Iterator[Path]:  # fmt: skip
    """A worktree at `base` whose files and index are `tree`, removed afterwards (`remove` may
    run the removal later, in a thread). An flock on `<path>.lease` marks it in use, so a
    worktree left by a killed worker is cleaned later."""
    root = _root(repo)
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{os.getpid()}-{next(_counter)}"
    lease = os.open(f"{path}.lease", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(lease, fcntl.LOCK_EX)
    try:
        repo.git(["worktree", "add", "-q", "--detach", "--no-checkout", str(path), base],
                 write=True)  # fmt: skip
        tree_repo = Repo(root=path, git_dir=_worktree_git_dir(path), common_dir=repo.common_dir)
        tree_repo.git(["read-tree", "--reset", "-u", tree], write=True)
        if data:
            share_dvc_data(repo.root, path)
        yield path
    finally:

        def cleanup() -> None:
            remove_worktree(repo, path)
            os.unlink(f"{path}.lease")
            os.close(lease)

        remove(cleanup)


def _worktree_git_dir(path: Path) -> Path:
    text = (path / ".git").read_text().strip()
    return Path(text.removeprefix("gitdir: "))


def share_dvc_data(root: Path, worktree: Path) -> None:
    """The worktree uses the repository's DVC cache and config, and gets its data on disk."""
    from gitexp.dvc.data import checkout_data
    from gitexp.workflows.reproduce import _share_dvc_cache

    _share_dvc_cache(root, worktree)
    checkout_data(worktree)


def remove_worktree(repo: Repo, path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    repo.git(["worktree", "prune"], write=True, check=False)


def clean_stale_worktrees(repo: Repo) -> None:
    """Removes worktrees whose worker died (their lease is free)."""
    root = _root(repo)
    if not root.is_dir():
        return
    for lease in root.glob("*.lease"):
        fd = os.open(lease, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            remove_worktree(repo, lease.with_suffix(""))
            lease.unlink(missing_ok=True)
        finally:
            os.close(fd)
