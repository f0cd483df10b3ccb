"""Keeping the workspace safe across crashes: the run lock and the journal of edited files.

Before gitexp edits files in the workspace (a params override, an apply, a checkout), it saves
their original bytes here, durably, with a hash of what it is about to write. Every gitexp start
that finds an entry whose operation is gone finishes or rolls it back (RELIABILITY rule 3, rows
A1, A3, W3, S7, S8), so recovery never relies on cleanup code having run. Recovery never
overwrites the user: a file is put back only while it still holds exactly what gitexp wrote;
otherwise the user's file stays and gitexp's saved copy is kept beside the journal.

Temporary files live under the git directory, never in the workspace, and a killed gitexp's
leftovers are removed at the next start (row S11).
"""

from __future__ import annotations

import base64
import errno
import fcntl
import hashlib
import itertools
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gitexp.errors import Interrupted
from gitexp.store.git import Repo

_counter = itertools.count()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(repo: Repo, kind: str) -> Path:
    """A fresh temporary file name under the git directory, tagged with this process's id so
    that the next start can remove it if this process is killed."""
    tmp_dir = repo.gitexp_dir / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    return tmp_dir / f"{kind}.{os.getpid()}.{next(_counter)}"


def write_atomic(path: Path, data: bytes, mode: int | None = None, tmp: Path | None = None) -> None:
    """Replace a file's content durably: a temporary file (under the git directory when
    `tmp` names one), fsync, then rename. A temporary that cannot be renamed across file
    systems becomes an in-place write (the journal holds the original)."""
    tmp = tmp or path.with_name(f".{path.name}.gitexp-{os.getpid()}")
    try:
        _write_synced(tmp, data, mode)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            _write_synced(path, data, mode)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _write_synced(path: Path, data: bytes, mode: int | None) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    if mode is not None:
        os.chmod(path, mode)


def write_workspace_file(repo: Repo, rel: str, data: bytes, mode: int | None = None) -> None:
    """Write a workspace file atomically with its temporary under the git directory."""
    full = repo.root / rel
    full.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(full, data, mode, temp_path(repo, "write"))


def _digest(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes() if not path.is_symlink() else None
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def try_flock(path: Path) -> int | None:
    """An open descriptor of `path` holding its exclusive flock, or None when another process
    holds it. The kernel releases the lock when its holder dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


class RunLock:
    """One run at a time per worktree: an flock the kernel releases when its holder dies,
    so a lock left by a killed run is never stale (row A8)."""

    def __init__(self, repo: Repo) -> None:
        self.path = repo.gitexp_dir / "run.lock"
        self._fd: int | None = None

    def holder(self) -> str:
        try:
            info = json.loads(self.path.read_text())
            return f"run {info['name']} (pid {info['pid']})"
        except (OSError, ValueError, KeyError, TypeError):
            return "another run"

    def try_acquire(self) -> bool:
        self._fd = try_flock(self.path)
        return self._fd is not None

    def acquire(self, name: str, interrupted: Callable[[], bool] = lambda: False) -> None:
        """Waits for the lock; `interrupted` lets Ctrl-C end the wait."""
        if not self.try_acquire():
            print(f"gitexp: waiting for {self.holder()} to finish", file=sys.stderr, flush=True)
            while not self.try_acquire():
                if interrupted():
                    raise Interrupted(f"run '{name}' was not started: interrupted while waiting")
                time.sleep(0.05)
        assert self._fd is not None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps({"name": name, "pid": os.getpid()}).encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class Journal:
    """What one operation is about to change in the workspace, until it is done.

    `kind` says how recovery treats a cut-off entry: 'files' (a run's overrides) and 'apply'
    are rolled back; 'checkout' is finished (its data checked out) once git has moved HEAD.
    """

    def __init__(self, repo: Repo, label: str, kind: str = "files") -> None:
        self.repo = repo
        self.dir = repo.gitexp_dir / "journal"
        self.path = self.dir / f"{os.getpid()}.{next(_counter)}.json"
        self.name = label
        self.kind = kind
        self.entry: dict[str, Any] = {}

    def save(
        self,
        written: Mapping[str, bytes | None],
        command_files: Sequence[str] = (),
        **extra: Any,
    ) -> None:
        """Saves the original bytes of each path and a hash of what will be written there
        (None: the path will be deleted). `command_files` are files the command itself may
        rewrite (a pipeline's lock and outputs): they are put back whatever they hold, and
        what they held is kept beside the journal."""
        files = {}
        for rel in [*written, *command_files]:
            full = self.repo.root / rel
            data = _read(full)
            files[rel] = {
                "data": None if data is None else base64.b64encode(data).decode(),
                "mode": full.stat().st_mode & 0o7777 if data is not None else None,
            }
            if rel in written:
                files[rel]["written"] = _digest(written[rel])
            else:
                files[rel]["owner"] = "command"
        self.entry = {"name": self.name, "kind": self.kind, "pid": os.getpid(),
                      "root": str(self.repo.root), "files": files, **extra}  # fmt: skip
        self._write()

    def update(self, **extra: Any) -> None:
        self.entry.update(extra)
        self._write()

    def _write(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_atomic(
            self.path, json.dumps(self.entry).encode(), None, temp_path(self.repo, "journal")
        )

    def restore(self) -> list[str]:
        """Puts every file back as it was, whatever is there now (the operation itself is
        ending: a command's own edits are in its run)."""
        return _restore_files(self.repo, self.path, conditional=False)[0]

    def discard(self) -> None:
        """The operation finished: its edits stay."""
        self.path.unlink(missing_ok=True)


def _restore_files(repo: Repo, entry_path: Path, conditional: bool) -> tuple[list[str], list[str]]:
    """Restores the entry's files; returns (restored, kept). With `conditional`, a file that
    no longer holds what gitexp wrote is kept, and the original is saved for the user."""
    entry = json.loads(entry_path.read_bytes())
    restored, kept = [], []
    saved_dir = repo.gitexp_dir / "recovered" / time.strftime("%Y%m%d-%H%M%S")
    for rel, saved in entry["files"].items():
        full = repo.root / rel
        original = None if saved.get("data") is None else base64.b64decode(saved["data"])
        current = _read(full)
        if current == original and (original is not None or not os.path.lexists(full)):
            continue
        if conditional and saved.get("owner") == "command" and current is not None:
            copy = saved_dir / rel  # the killed command's version: put aside, not lost
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_bytes(current)
        elif conditional and "written" in saved and _digest(current) != saved["written"]:
            if original is not None:  # the user's file stays; gitexp's copy goes beside
                copy = saved_dir / rel
                copy.parent.mkdir(parents=True, exist_ok=True)
                copy.write_bytes(original)
                kept.append(f"{rel} (the earlier version is at {copy})")
            else:
                kept.append(rel)
            continue
        if original is None:
            if full.is_file() or full.is_symlink():
                full.unlink()
        else:
            full.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(full, original, saved.get("mode"), temp_path(repo, "restore"))
        restored.append(rel)
    entry_path.unlink()
    return restored, kept


def _wait_for(pid: int | None, seconds: float = 60) -> None:
    """Waits while a git process a killed gitexp started (in its own session) still runs."""
    if not pid:
        return
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process_alive(pid):
        time.sleep(0.05)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is as good as dead
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def recover(repo: Repo, checkout_data: Callable[[Path], None] | None = None) -> list[str]:
    """Finish or roll back what a killed gitexp left, and remove its temporary files.
    Returns notices. Cheap when there is nothing to do.

    `checkout_data` puts DVC data in line with the pointers on disk (DVC is imported only
    when an apply or checkout was cut off).
    """
    notices = _remove_leftovers(repo)
    journal_dir = repo.gitexp_dir / "journal"
    try:
        entries = sorted(p for p in journal_dir.iterdir() if p.suffix == ".json")
    except FileNotFoundError:
        return notices
    if not entries:
        return notices
    lock = RunLock(repo)
    if not lock.try_acquire():
        return notices  # a run is under way; its journal is live
    try:
        for entry_path in entries:
            try:
                notices.append(_recover_entry(repo, entry_path, checkout_data))
            except (OSError, ValueError, KeyError) as exc:
                notices.append(f"could not recover {entry_path}: {exc}")
    finally:
        lock.release()
    return notices


def _recover_entry(
    repo: Repo, entry_path: Path, checkout_data: Callable[[Path], None] | None
) -> str:
    entry = json.loads(entry_path.read_bytes())
    name, kind = entry.get("name", "an operation"), entry.get("kind", "files")
    _wait_for(entry.get("git_pid"))
    if kind == "checkout":
        head = repo.head()
        entry_path.unlink()
        if head == entry.get("target"):
            _data(repo, checkout_data)
            return f"{name} was cut off after git moved HEAD; finished it (files and data)"
        if head == entry.get("head"):
            return f"{name} was cut off before anything changed; the workspace is as it was"
        return f"{name} was cut off; HEAD is at {head}: check the workspace with 'git status'"
    restored, kept = _restore_files(repo, entry_path, conditional=True)
    pointers = [p for p in restored if p.endswith(".dvc") or p.endswith("dvc.lock")]
    if pointers:
        _data(repo, checkout_data)
    what = "files and data" if pointers else "files"
    if not restored and not kept:
        return f"{name} was cut off before it changed any file; the workspace is as it was"
    text = f"{name} was cut off; rolled back ({what}): restored {', '.join(restored) or 'nothing'}"
    if kept:
        text += f"; kept your later edits to {', '.join(kept)}"
    return text


def _data(repo: Repo, checkout_data: Callable[[Path], None] | None) -> None:
    if checkout_data is None:
        from gitexp.dvc.data import checkout_data as default

        checkout_data = default
    checkout_data(repo.root)


def _remove_leftovers(repo: Repo) -> list[str]:
    """Temporary files of gitexp processes that no longer run, and reproduce worktrees
    whose gitexp was killed."""
    notices: list[str] = []
    tmp_dir = repo.gitexp_dir / "tmp"
    try:
        names = os.listdir(tmp_dir)
    except FileNotFoundError:
        names = []
    for name in names:
        parts = name.split(".")
        if len(parts) >= 2 and parts[1].isdigit() and not process_alive(int(parts[1])):
            path = tmp_dir / name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    for marker in _worktree_markers(repo):
        info = json.loads(marker.read_text())
        if process_alive(int(info["pid"])):
            continue
        path = Path(info["path"])
        repo.git(["worktree", "remove", "--force", str(path)], write=True, check=False)
        shutil.rmtree(path, ignore_errors=True)
        repo.git(["worktree", "prune"], write=True, check=False)
        marker.unlink(missing_ok=True)
        notices.append(f"removed the worktree {path} of a reproduce that was cut off")
    return notices


def _worktree_markers(repo: Repo) -> Sequence[Path]:
    try:
        return sorted((repo.gitexp_dir / "worktrees").glob("*.json"))
    except OSError:
        return []


def register_worktree(repo: Repo, path: Path) -> Path:
    """Notes a temporary worktree so the next start removes it if this process dies."""
    folder = repo.gitexp_dir / "worktrees"
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f"{os.getpid()}.{next(_counter)}.json"
    marker.write_text(json.dumps({"pid": os.getpid(), "path": str(path)}))
    return marker
