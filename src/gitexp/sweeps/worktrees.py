"""The snapshot a sweep starts from, and the worktrees its points run in.

The snapshot is the tree `gitexp run` would record before the command runs: tracked and
untracked files as on disk (uncommitted edits included), DVC-tracked data committed to DVC's
cache, taken once through a temporary index, so the user's workspace is only read.

A point runs in a worktree of its own in a temporary directory: HEAD detached at
the user's commit, files and index as the snapshot, DVC's cache shared with the repository.
So the run's parent is the user's HEAD and its tree what a run in the workspace would have
had; the user's workspace, index and branch are never involved.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from gitexp.core.config import RESERVED_DIR
from gitexp.errors import StateError
from gitexp.store.git import Repo
from gitexp.workflows.capture import GENERATED_DIRS, data_blobs, screen_files

Warn = Callable[[str], None]
_counter = itertools.count(1)


def snapshot_tree(repo: Repo, max_file_bytes: int, warn: Warn) -> str:
    """The workspace as a tree. Secret-looking files are left out, as in a run (row G8); a
    file too large for git goes to DVC's cache, its pointer in the tree (row G7), so every
    worktree has it; without DVC the sweep stops, as its runs could not have the file."""
    excludes = [RESERVED_DIR, *GENERATED_DIRS]
    with repo.temp_index() as index:
        screened = screen_files(repo, index, excludes, max_file_bytes)
        for rel in screened.secrets:
            warn(f"left {rel} out of the sweep: it looks like a secret (add it to .gitignore)")
        large = [rel for rel, _ in screened.large]
        if large and not (repo.root / ".dvc").is_dir():
            raise StateError(
                f"{', '.join(large)}: over the {max_file_bytes / 1e6:g} MB limit for files in "
                "git, so the sweep's worktrees could not have it: run 'gitexp init' (DVC then "
                "stores it) or add it to .gitignore"
            )
        files, _ = data_blobs(repo, index, large, lambda _phase: None)
        index.add_all([*excludes, *screened.secrets, *large])
        if large:  # a large file git tracked before is now DVC's: only its pointer stays
            repo.git(["rm", "-q", "--cached", "--ignore-unmatch", "--", *large], env=index.env,
                     write=True)  # fmt: skip
        index.add_blobs(repo.write_blob_data(files))
        return index.write_tree()


def has_data(repo: Repo, tree: str) -> bool:
    """Whether a tree has DVC pointer files, whose data a worktree needs checked out."""
    out = repo.git(["ls-tree", "-r", "--name-only", "-z", tree]).stdout
    return any(p.endswith(b".dvc") or p.endswith(b"dvc.lock") for p in out.split(b"\0"))


def worktrees_dir(repo: Repo) -> Path:
    """Where a repository's sweep worktrees go: a temporary directory of its own (not under
    `.git`, where gitexp never writes a params file)."""
    key = hashlib.sha1(str(repo.common_dir.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"gitexp-worktrees-{os.getuid()}" / key


@contextlib.contextmanager
def point_worktree(
    repo: Repo, base: str, tree: str, data: bool, place: Path | None = None,
    remove: Callable[[Callable[[], None]], None] = lambda cleanup: cleanup(),
) -> Iterator[Path]:  # fmt: skip
    """A worktree at `base` whose files and index are `tree`, removed afterwards (`remove` may
    run the removal later, in a thread). An flock on `<path>.lease` marks it in use, so a
    worktree left by a killed worker is cleaned later."""
    root = place or worktrees_dir(repo)
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{os.getpid()}-{next(_counter)}"
    lease = os.open(f"{path}.lease", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(lease, fcntl.LOCK_EX)
    try:
        repo.git(["worktree", "add", "-q", "--detach", "--no-checkout", str(path), base],
                 write=True)  # fmt: skip
        tree_repo = Repo(root=path, git_dir=_worktree_git_dir(path), common_dir=repo.common_dir)
        tree_repo.git(["read-tree", "--reset", "-u", tree], write=True)
        share_dvc_data(repo.root, path, checkout=data)
        yield path
    finally:

        def cleanup() -> None:
            remove_worktree(repo, path)
            os.unlink(f"{path}.lease")
            os.close(lease)
            with contextlib.suppress(OSError):  # the last worktree of the repository
                root.rmdir()

        remove(cleanup)


def _worktree_git_dir(path: Path) -> Path:
    text = (path / ".git").read_text().strip()
    return Path(text.removeprefix("gitdir: "))


def share_dvc_data(root: Path, worktree: Path, checkout: bool) -> None:
    """The worktree uses the repository's DVC cache and config, always: what a run stores in
    DVC's cache (`--out`, a large file, a logged model) must outlive the worktree. With
    `checkout`, the data its pointer files name is put on disk too."""
    from gitexp.workflows.reproduce import share_dvc_cache

    share_dvc_cache(root, worktree)
    if checkout:
        from gitexp.dvc.data import checkout_data

        checkout_data(worktree)


def remove_worktree(repo: Repo, path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    repo.git(["worktree", "prune"], write=True, check=False)


def clean_stale_worktrees(repo: Repo) -> None:
    """Removes worktrees whose worker died (their lease is free)."""
    root = worktrees_dir(repo)
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
