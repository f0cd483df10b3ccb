"""Returning to a past run: `checkout` (become the run), `apply` (bring its change onto the
current branch) and `branch` (a branch at the run, ready for a pull request).

Both `checkout` and `apply` refuse to overwrite uncommitted work; with `--force` they first
record the workspace (worktree and index) as a run with status 'saved', so nothing is ever
lost. Both are journaled: a kill -9 half-way ends, at the next start, in the complete old or
the complete new state, files and DVC data both (rows W3, S8). A run's tree is checked for
paths that would leave the workspace before anything is written (rows S1, S2).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gitexp.core.config import RESERVED_DIR
from gitexp.dvc.data import DataEntry, checkout_data, collect, current_hashes, ensure_in_cache
from gitexp.errors import StateError, UsageError
from gitexp.store.faults import fault_point
from gitexp.store.git import Repo, iter_lines_z
from gitexp.store.journal import Journal, RunLock, temp_path, write_workspace_file
from gitexp.store.snapshot import Target, read_pointer_files, read_states, resolve_target
from gitexp.workflows.containment import check_run_tree, tree_entries
from gitexp.workflows.run import save_workspace

Warn = Callable[[str], None]


@dataclass(frozen=True)
class Dirty:
    tracked: list[str]  # modified, staged, deleted
    untracked: list[str]  # not ignored
    data: list[str]  # DVC-tracked paths whose content differs from their pointer


@dataclass(frozen=True)
class Blob:
    mode: str  # git's file mode: 100644, 100755, 120000 (symlink)
    data: bytes


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
    pointers = {p: (repo.root / p).read_bytes() for p in _dvc_files(repo)}  # .dvc files only
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
    warn(
        f"saved your uncommitted changes (worktree and index) as run '{name}' "
        f"(gitexp apply {name} brings them back)"
    )


def _locked(repo: Repo) -> RunLock:
    lock = RunLock(repo)
    if not lock.try_acquire():
        raise StateError(f"{lock.holder()} is in progress in this workspace: wait for it to end")
    return lock


def checkout(repo: Repo, spec: str, force: bool, warn: Warn) -> str:
    """HEAD detached at the run's commit, its files and data on disk. Returns the commit."""
    target = _run_target(repo, spec)
    assert target.rev is not None
    check_run_tree(repo, target.rev, spec, repo.root)
    lock = _locked(repo)
    try:
        dirty = workspace_changes(repo)
        in_run = set(_changed_paths(repo, "HEAD", target.rev)) if repo.head() else set()
        conflicts = dirty.tracked + [p for p in dirty.untracked if p in in_run] + dirty.data
        ensure_in_cache(repo.root, pointer_paths(repo, target))
        _guard(repo, sorted(set(conflicts)), force, "checkout", warn)
        journal = Journal(repo, f"checkout of '{spec}'", kind="checkout")
        journal.save({}, target=target.rev, head=repo.head())
        fault_point("checkout-started")
        # With --force the workspace was saved above; --force then lets git overwrite it.
        force_flag = ["--force"] if force else []
        try:
            repo.git(
                ["checkout", "-q", *force_flag, "--detach", target.rev],
                write=True,
                on_start=lambda pid: journal.update(git_pid=pid),
            )
        except BaseException:
            if repo.head() != target.rev:  # git refused: nothing changed
                journal.discard()
            raise
        fault_point("checkout-moved")
        checkout_data(repo.root)
        journal.discard()
    finally:
        lock.release()
    return target.rev


def _run_base(repo: Repo, target: Target) -> str | None:
    """The commit a run (or any commit) changed: its first parent."""
    proc = repo.git(["rev-parse", "-q", "--verify", f"{target.rev}^1"], check=False)
    return proc.stdout.decode().strip() or None


def _blobs(repo: Repo, rev: str | None) -> dict[str, tuple[str, str]]:
    """path -> (mode, blob id) of a commit's tree (empty for None)."""
    if rev is None:
        return {}
    return {path: (mode, oid) for mode, oid, path in tree_entries(repo, rev)}


def apply(repo: Repo, spec: str, force: bool, warn: Warn, whole: bool = False) -> list[str]:
    """The run's change (base..run) brought onto HEAD as a three-way merge, like `git
    cherry-pick --no-commit` but left unstaged, and the data checked out. With `whole`, the
    files are made equal to the run's. Returns the paths written."""
    target = _run_target(repo, spec)
    assert target.rev is not None
    head = repo.head()
    if head is None:
        raise StateError("this repository has no commit yet: make a first commit first")
    check_run_tree(repo, target.rev, spec, repo.root)
    lock = _locked(repo)
    try:
        base = _run_base(repo, target)
        if whole or base is None:
            changes = _whole_changes(repo, head, target.rev)
        else:
            changes = _merged_changes(repo, base, head, target.rev, spec)
        dirty = workspace_changes(repo)
        conflicts = [p for p in dirty.tracked + dirty.untracked if p in changes] + dirty.data
        ensure_in_cache(repo.root, pointer_paths(repo, target))
        _guard(repo, sorted(set(conflicts)), force, "apply", warn)
        journal = Journal(repo, f"apply of '{spec}'", kind="apply")
        journal.save({p: b.data if b else None for p, b in changes.items()})
        fault_point("apply-writing")
        try:
            _write_files(repo, changes)
            fault_point("apply-written")
            index = _saved_index(repo, target)
            if index and base:
                _apply_index(repo, base, index, warn)
            if any(p.endswith(".dvc") or p.endswith("dvc.lock") for p in changes):
                checkout_data(repo.root)
        except BaseException:
            journal.restore()  # a failed apply leaves the workspace as it was
            if any(p.endswith(".dvc") or p.endswith("dvc.lock") for p in changes):
                try:
                    checkout_data(repo.root)
                except Exception as exc:  # the first error is the one to report
                    warn(f"could not put the data back as it was: {exc}")
            raise
        journal.discard()
    finally:
        lock.release()
    return sorted(changes)


def _whole_changes(repo: Repo, head: str, rev: str) -> dict[str, Blob | None]:
    paths = _changed_paths(repo, head, rev)
    entries = _blobs(repo, rev)
    with repo.batch_reader() as reader:
        data = reader.read_many([entries[p][1] for p in paths if p in entries])
    found = iter(data)
    return {p: Blob(entries[p][0], next(found) or b"") if p in entries else None for p in paths}


def _merged_changes(
    repo: Repo, base: str, head: str, run: str, label: str
) -> dict[str, Blob | None]:
    """What base..run changes, merged into HEAD's files; refused with the conflicting paths
    before anything is written."""
    paths = _changed_paths(repo, base, run)
    sides = [_blobs(repo, rev) for rev in (base, head, run)]
    oids = {entry[1] for side in sides for p in paths if (entry := side.get(p))}
    with repo.batch_reader() as reader:
        contents = dict(zip(oids, reader.read_many(list(oids)), strict=True))
    changes: dict[str, Blob | None] = {}
    conflicts = []
    for path in paths:
        b, h, r = (side.get(path) for side in sides)
        if h == b:  # HEAD has not touched it: take the run's version
            changes[path] = Blob(r[0], contents[r[1]] or b"") if r else None
        elif h == r:
            continue  # HEAD already has the run's version
        elif b is None or h is None or r is None or "120000" in (b[0], h[0], r[0]):
            conflicts.append(path)
        else:
            merged = _merge_text(repo, *(contents[x[1]] or b"" for x in (h, b, r)))
            if merged is None:
                conflicts.append(path)
            else:
                changes[path] = Blob(r[0] if h[0] == b[0] else h[0], merged)
    if conflicts:
        listed = ", ".join(conflicts[:8]) + (" ..." if len(conflicts) > 8 else "")
        raise StateError(
            f"applying '{label}' conflicts with changes committed since its base in {listed}; "
            "nothing was written (use --whole to take the run's files as they are)"
        )
    return changes


def _merge_text(repo: Repo, ours: bytes, base: bytes, theirs: bytes) -> bytes | None:
    """A three-way merge of one file by `git merge-file`, or None when it conflicts."""
    temps = [temp_path(repo, "merge") for _ in range(3)]
    try:
        for temp, data in zip(temps, (ours, base, theirs), strict=True):
            temp.write_bytes(data)
        proc = repo.git(["merge-file", "-p", *map(str, temps)], check=False)
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)
    return proc.stdout if proc.returncode == 0 else None


def _write_files(repo: Repo, changes: Mapping[str, Blob | None]) -> None:
    """Writes each path as given (None: deletes it), in this process, so a kill stops the
    writes at once and the journal knows what is on disk."""
    for path, blob in sorted(changes.items()):
        full = repo.root / path
        if (blob is None or blob.mode == "120000") and (full.is_file() or full.is_symlink()):
            full.unlink()
        if blob is None:
            continue
        if blob.mode == "120000":
            full.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(blob.data.decode("utf-8", "surrogateescape"), full)
        elif blob.mode != "160000":
            write_workspace_file(repo, path, blob.data, 0o755 if blob.mode == "100755" else 0o644)


def _saved_index(repo: Repo, target: Target) -> str | None:
    """The index commit a saved run keeps beside its worktree (see save_workspace)."""
    with repo.batch_reader() as reader:
        (state,) = read_states(repo, [target], reader)
    index = (state.record or {}).get("index")
    return index if isinstance(index, str) and repo.resolve_commit(index) else None


def _apply_index(repo: Repo, base: str, index: str, warn: Warn) -> None:
    """Stages what the saved run had staged: each path the saved index changed from its
    base gets that index entry, where the index still has the base's entry (row S9)."""
    out = repo.git(["diff-tree", "-r", "-z", "--no-renames", base, index, "--"]).stdout
    fields = out.split(b"\0")
    staged = repo.git(["ls-files", "-s", "-z"]).stdout.decode("utf-8", "surrogateescape")
    current = {}
    for line in staged.split("\0"):
        if line:
            info, _, path = line.partition("\t")
            mode, oid, _stage = info.split()
            current[path] = (mode, oid)
    lines = []
    for i in range(0, len(fields) - 1, 2):
        meta, path = fields[i].decode(), fields[i + 1].decode("utf-8", "surrogateescape")
        old_mode, new_mode, old_oid, new_oid = meta.lstrip(":").split()[:4]
        was = None if old_mode == "000000" else (old_mode, old_oid)
        if current.get(path) != was:
            warn(f"left {path} unstaged: its staged version changed since the run was saved")
            continue
        if new_mode == "000000":
            lines.append(f"0 {'0' * 40}\t{path}\n")
        else:
            lines.append(f"{new_mode} {new_oid}\t{path}\n")
    if lines:
        repo.git(["update-index", "--index-info"], stdin="".join(lines).encode(), write=True)


def branch(repo: Repo, spec: str, name: str) -> str:
    """A branch whose tip is the run's code and params (its record left out), on its base."""
    target = _run_target(repo, spec)
    assert target.rev is not None
    if name.startswith("-"):
        raise UsageError(f"invalid branch name '{name}': it must not begin with '-'")
    check = repo.git(["check-ref-format", "--branch", name], check=False)
    if check.returncode != 0:
        raise UsageError(f"invalid branch name '{name}'")
    if repo.ref_exists(f"refs/heads/{name}"):
        raise UsageError(f"branch '{name}' already exists: choose another name")
    check_run_tree(repo, target.rev, spec)
    with repo.temp_index() as index:
        repo.git(["read-tree", target.rev], env=index.env, write=True)
        repo.git(
            ["rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", RESERVED_DIR],
            env=index.env,
            write=True,
        )
        tree = index.write_tree()
    message = repo.git(["log", "-1", "--format=%B", target.rev]).stdout.decode()
    parent = _run_base(repo, target)
    commit = repo.commit_tree(tree, [parent] if parent else [], message, {})
    repo.create_ref(f"refs/heads/{name}", commit, f"gitexp branch {name}")
    return commit


def pointer_paths(repo: Repo, target: Target) -> dict[str, DataEntry]:
    """Tracked data of a revision: path -> its entry (for push, pull and checkout)."""
    with repo.batch_reader() as reader:
        return collect(read_pointer_files(repo, target, reader))
