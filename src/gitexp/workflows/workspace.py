"""Returning to a past run: `checkout` (become the run), `apply` (bring its changes onto the
current branch) and `branch` (a branch at the run, ready for a pull request).

Both `checkout` and `apply` refuse to overwrite uncommitted work; with `--force` they first
record the workspace as a run with status 'saved', so nothing is ever lost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gitexp.core.config import RESERVED_DIR
from gitexp.dvc.data import checkout_data, collect, current_hashes, ensure_in_cache
from gitexp.errors import StateError, UsageError
from gitexp.store.faults import fault_point
from gitexp.store.git import Repo, iter_lines_z
from gitexp.store.journal import Journal, RunLock
from gitexp.store.snapshot import Target, read_pointer_files, resolve_target
from gitexp.workflows.run import save_workspace

Warn = Callable[[str], None]


@dataclass(frozen=True)
class Dirty:
    tracked: list[str]  # modified, staged, deleted
    untracked: list[str]  # not ignored
    data: list[str]  # DVC-tracked paths whose content differs from their pointer


def workspace_changes(repo: Repo) -> Dirty:
    out = repo.git(["status", "--porcelain=v1", "-z", "--untracked-files=all"]).stdout
    tracked, untracked = [], []
    entries = iter(iter_lines_z(out))
    for entry in entries:
        code, path = entry[:2], entry[3:]
        if code[0] in "RC":  # renames carry the old path as the next entry
            next(entries, None)
        if path == RESERVED_DIR or path.startswith(RESERVED_DIR + "/"):
            continue
        (untracked if code == "??" else tracked).append(path)
    data = []
    pointers = {p: (repo.root / p).read_bytes() for p in _dvc_files(repo)}
    tracked_data = {e.path: e.hash for e in collect(pointers).values()}
    if tracked_data:
        now = current_hashes(repo.root, tracked_data)
        data = sorted(p for p, h in now.items() if h != tracked_data[p])
    return Dirty(tracked=tracked, untracked=untracked, data=data)


def _dvc_files(repo: Repo) -> list[str]:
    out = repo.git(["ls-files", "-z", "-c", "--", "*.dvc"]).stdout
    return [p for p in iter_lines_z(out) if (repo.root / p).is_file()]


def _run_target(repo: Repo, spec: str) -> Target:
    target = resolve_target(repo, spec)
    if target.rev is None:
        raise UsageError("'workspace' is not a run: name a run or a revision")
    return target


def _changed_paths(repo: Repo, a: str, b: str) -> list[str]:
    out = repo.git(["diff", "--name-only", "-z", "--no-renames", a, b, "--"]).stdout
    return [p for p in iter_lines_z(out) if not p.startswith(RESERVED_DIR + "/")]


def _guard(repo: Repo, conflicts: list[str], force: bool, action: str, warn: Warn) -> None:
    """Refuses to overwrite changes, or with force saves them as a run first."""
    if not conflicts:
        return
    listed = ", ".join(conflicts[:8]) + (f" and {len(conflicts) - 8} more" if len(conflicts) > 8
                                         else "")  # fmt: skip
    if not force:
        raise StateError(
            f"{action} would overwrite uncommitted changes in {listed}: commit them, "
            f"or use --force to save them as a run first"
        )
    name = save_workspace(repo, f"saved by gitexp before {action}", warn)
    warn(f"saved your uncommitted changes as run '{name}' (gitexp apply {name} brings them back)")


def _locked(repo: Repo) -> RunLock:
    lock = RunLock(repo)
    if not lock.try_acquire():
        raise StateError(f"{lock.holder()} is in progress in this workspace: wait for it to end")
    return lock


def checkout(repo: Repo, spec: str, force: bool, warn: Warn) -> str:
    """HEAD detached at the run's commit, its files and data on disk. Returns the commit."""
    target = _run_target(repo, spec)
    lock = _locked(repo)
    try:
        dirty = workspace_changes(repo)
        in_run = set(_changed_paths(repo, "HEAD", target.rev)) if repo.head() else set()
        conflicts = dirty.tracked + [p for p in dirty.untracked if p in in_run] + dirty.data
        ensure_in_cache(repo.root, pointer_paths(repo, target))
        _guard(repo, sorted(set(conflicts)), force, "checkout", warn)
        # With --force the workspace was saved above; --force then lets git overwrite it.
        force_flag = ["--force"] if force else []
        repo.git(["checkout", "-q", *force_flag, "--detach", target.rev], write=True)
        checkout_data(repo.root)
    finally:
        lock.release()
    return target.rev


def apply(repo: Repo, spec: str, force: bool, warn: Warn) -> list[str]:
    """The run's files (code, params, data pointers) written over the workspace, HEAD and the
    branch kept; the data checked out. Returns the paths that changed."""
    target = _run_target(repo, spec)
    if repo.head() is None:
        raise StateError("this repository has no commit yet: make a first commit first")
    lock = _locked(repo)
    try:
        changed = _changed_paths(repo, "HEAD", target.rev)
        dirty = workspace_changes(repo)
        touched = set(changed)
        conflicts = [p for p in dirty.tracked + dirty.untracked if p in touched] + dirty.data
        ensure_in_cache(repo.root, pointer_paths(repo, target))
        _guard(repo, sorted(set(conflicts)), force, "apply", warn)
        # Journaled, so a kill -9 half-way is rolled back by the next gitexp start (row W3).
        journal = Journal(repo, f"apply of '{spec}'")
        journal.save(changed)
        fault_point("apply-writing")
        _write_tree_files(repo, target.rev, changed)
        journal.discard()
        checkout_data(repo.root)
    finally:
        lock.release()
    return changed


def _write_tree_files(repo: Repo, rev: str, paths: list[str]) -> None:
    """Makes each path on disk what it is in `rev` (deleting those `rev` lacks), leaving the
    index alone so the changes show as unstaged."""
    present = set(
        iter_lines_z(repo.git(["ls-tree", "-r", "-z", "--name-only", rev, "--", *paths]).stdout)
    ) if paths else set()  # fmt: skip
    for path in paths:
        if path not in present:
            full = repo.root / path
            if full.is_file() or full.is_symlink():
                full.unlink()
    keep = sorted(present)
    if keep:
        repo.git(
            ["restore", f"--source={rev}", "--worktree", "--", *keep],
            write=True,
        )


def branch(repo: Repo, spec: str, name: str) -> str:
    """A branch whose tip is the run's code and params (its record left out), on its base."""
    target = _run_target(repo, spec)
    if name.startswith("-"):
        raise UsageError(f"invalid branch name '{name}': it must not begin with '-'")
    check = repo.git(["check-ref-format", "--branch", name], check=False)
    if check.returncode != 0:
        raise UsageError(f"invalid branch name '{name}'")
    if repo.ref_exists(f"refs/heads/{name}"):
        raise UsageError(f"branch '{name}' already exists: choose another name")
    with repo.temp_index() as index:
        repo.git(["read-tree", target.rev], env=index.env, write=True)
        repo.git(
            ["rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", RESERVED_DIR],
            env=index.env,
            write=True,
        )
        tree = index.write_tree()
    message = repo.git(["log", "-1", "--format=%B", target.rev]).stdout.decode()
    parents = repo.text(["rev-list", "--parents", "-n", "1", target.rev]).split()[1:]
    args = ["commit-tree", tree]
    for parent in parents:
        args += ["-p", parent]
    commit = repo.text(args, stdin=message.encode(), write=True)
    repo.create_ref(f"refs/heads/{name}", commit, f"gitexp branch {name}")
    return commit


def pointer_paths(repo: Repo, target: Target) -> dict[str, str]:
    """Tracked data of a revision: path -> hash (for push and pull)."""
    with repo.batch_reader() as reader:
        return {e.path: e.hash for e in collect(read_pointer_files(repo, target, reader)).values()}
