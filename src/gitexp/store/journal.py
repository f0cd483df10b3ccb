"""Keeping the workspace safe across crashes: the run lock and the journal of edited files.

Before gitexp edits a file in the workspace (a params override), it saves the file's original
bytes here, durably. Every gitexp start that finds a journal entry whose run is gone puts the
files back (RELIABILITY rule 3, rows A1 and A3), so recovery never relies on cleanup code.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from gitexp.errors import Interrupted
from gitexp.store.git import Repo


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int | None = None) -> None:
    """Replace a file's content durably: a temporary file, fsync, then rename."""
    tmp = path.with_name(f".{path.name}.gitexp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class RunLock:
    """One run at a time per repository: an flock the kernel releases when its holder dies,
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

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
    """The original bytes of the files one operation edits, until it puts them back (a run's
    overrides) or is done (apply). `label` says what was cut off if gitexp dies meanwhile."""

    def __init__(self, repo: Repo, label: str) -> None:
        self.repo = repo
        self.dir = repo.gitexp_dir / "journal"
        self.path = self.dir / f"{os.getpid()}.json"
        self.name = label

    def save(self, paths: list[str]) -> None:
        files = {}
        for rel in paths:
            full = self.repo.root / rel
            if full.exists():
                files[rel] = {
                    "data": base64.b64encode(full.read_bytes()).decode(),
                    "mode": full.stat().st_mode & 0o7777,
                }
            else:
                files[rel] = None
        self.dir.mkdir(parents=True, exist_ok=True)
        entry = {"name": self.name, "pid": os.getpid(), "root": str(self.repo.root), "files": files}
        write_atomic(self.path, json.dumps(entry).encode())

    def restore(self) -> list[str]:
        return _restore_entry(self.repo, self.path)

    def discard(self) -> None:
        """The operation finished: its edits stay."""
        self.path.unlink(missing_ok=True)


def _restore_entry(repo: Repo, entry_path: Path) -> list[str]:
    entry = json.loads(entry_path.read_bytes())
    restored = []
    for rel, saved in entry["files"].items():
        full = repo.root / rel
        if saved is None:
            full.unlink(missing_ok=True)
        else:
            write_atomic(full, base64.b64decode(saved["data"]), saved["mode"])
        restored.append(rel)
    entry_path.unlink()
    return restored


def recover(repo: Repo) -> list[str]:
    """Finish what a killed run left: put back the files it had edited. Returns notices.

    Only entries whose run no longer holds the lock are touched; cheap when there are none.
    """
    journal_dir = repo.gitexp_dir / "journal"
    try:
        entries = sorted(p for p in journal_dir.iterdir() if p.suffix == ".json")
    except FileNotFoundError:
        return []
    if not entries:
        return []
    lock = RunLock(repo)
    if not lock.try_acquire():
        return []  # a run is under way; its journal is live
    notices = []
    try:
        for entry_path in entries:
            try:
                name = json.loads(entry_path.read_bytes()).get("name", "?")
                files = _restore_entry(repo, entry_path)
            except (OSError, ValueError) as exc:
                notices.append(f"could not recover {entry_path}: {exc}")
                continue
            notices.append(f"{name} was cut off; restored {', '.join(files) or 'nothing'}")
    finally:
        lock.release()
    return notices
