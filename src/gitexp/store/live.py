"""Runs in progress, as other processes (`gitexp ui`) see them.

While a run's command goes (`gitexp run`, or a Python-API run outside it), a small JSON file
under the common git directory names the run, its process and its workspace, and `gitexp run`
mirrors the command's output beside it, so a viewer can follow metrics and log before the run
lands. These files are never the source of truth: the run's ref is, once it exists. An entry
whose process is gone is ignored and removed by the next run; nothing here can fail a run.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitexp.core.secrets import redact, secret_values
from gitexp.store.git import Repo
from gitexp.store.journal import process_alive

MAX_LOG_BYTES = 8 * 1024 * 1024  # the mirror starts over past this; the run keeps all of it
RESTARTED = b"[gitexp: earlier output is in the run's log once it is recorded]\n"


@dataclass(frozen=True)
class LiveRun:
    """A run whose command is still going."""

    id: str  # the entry's file stem
    name: str | None  # None for a Python-API run not yet named
    pid: int
    started: float
    root: Path  # the workspace it writes its files in
    command: tuple[str, ...]
    metrics_dir: str | None  # DVCLive's folder of a Python-API run
    log: Path | None


def live_dir(repo: Repo) -> Path:
    """Shared by all worktrees, so runs in other worktrees (sweeps) are seen too."""
    return repo.common_dir / "gitexp" / "live"


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks (Linux), which a reused pid does not share."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def _alive(pid: int, start: str | None) -> bool:
    if start is not None and Path("/proc").is_dir():
        return _process_start(pid) == start
    return process_alive(pid)


def list_live(repo: Repo) -> list[LiveRun]:
    """Runs in progress, oldest first; entries of processes that are gone are left out."""
    found = []
    try:
        paths = sorted(live_dir(repo).glob("*.json"))
    except OSError:
        return []
    for path in paths:
        try:
            info = json.loads(path.read_bytes())
            if not _alive(int(info["pid"]), info.get("start")):
                continue
            log = path.with_suffix(".log")
            found.append(
                LiveRun(
                    id=path.stem,
                    name=info.get("name"),
                    pid=int(info["pid"]),
                    started=float(info["started"]),
                    root=Path(info["root"]),
                    command=tuple(str(a) for a in info.get("command") or ()),
                    metrics_dir=info.get("metrics_dir"),
                    log=log if info.get("log") else None,
                )
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return sorted(found, key=lambda r: r.started)


class LiveEntry:
    """The entry of one run in progress, from `open()` to `close()`; writes never raise."""

    def __init__(
        self,
        repo: Repo,
        name: str | None,
        command: Sequence[str],
        *,
        metrics_dir: str | None = None,
        mirror_log: bool = False,
    ) -> None:
        self.dir = live_dir(repo)
        self.path = self.dir / f"{os.getpid()}-{threading.get_ident()}-{time.time_ns()}.json"
        self.info: dict[str, Any] = {
            "name": name,
            "pid": os.getpid(),
            "start": _process_start(os.getpid()),
            "started": time.time(),
            "root": str(repo.root),
            "command": list(command),
            "metrics_dir": metrics_dir,
            "log": mirror_log,
        }
        self._log: Any = None
        self._log_size = 0
        # the log a viewer reads is masked as the stored log is (row S10)
        self._secrets = secret_values(os.environ)
        self._held = b""  # the end of the output that may be the start of a secret

    def open(self) -> LiveEntry:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            _remove_stale(self.dir)
            if self.info["log"]:
                self._log = open(self.path.with_suffix(".log"), "wb")  # noqa: SIM115 - kept open
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.info))
            os.replace(tmp, self.path)
        except OSError:  # a full or read-only git directory: the run goes on without it
            self.close()
        return self

    def write(self, chunk: bytes) -> None:
        """A copy of the command's output, secrets masked; past MAX_LOG_BYTES it starts over.

        A secret cut in two by the pipe is masked too: output is written only up to where
        no secret that has begun could still go on."""
        if self._log is None:
            return
        data = self._held + chunk
        # a secret that goes on past this output begins in its last len - 1 bytes
        cut = max(0, len(data) - max((len(v) for v in self._secrets), default=1) + 1)
        moved = True
        while moved:  # and none that is whole here may straddle the cut
            moved = False
            for value in self._secrets:
                found = data.find(value, max(0, cut - len(value) + 1))
                if 0 <= found < cut:
                    cut, moved = found, True
        self._held = data[cut:]
        self._append(redact(data[:cut], self._secrets))

    def _append(self, chunk: bytes) -> None:
        if self._log is None or not chunk:
            return
        try:
            if self._log_size + len(chunk) > MAX_LOG_BYTES:
                self._log.seek(0)
                self._log.truncate()
                self._log.write(RESTARTED)
                self._log_size = len(RESTARTED)
                chunk = chunk[-MAX_LOG_BYTES // 2 :]
            self._log.write(chunk)
            self._log.flush()
            self._log_size += len(chunk)
        except (OSError, ValueError):
            self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None

    def close(self) -> None:
        self._append(redact(self._held, self._secrets))
        self._held = b""
        self._close_log()
        for path in (self.path, self.path.with_suffix(".log"), self.path.with_suffix(".tmp")):
            with contextlib.suppress(OSError):
                path.unlink()

    def __enter__(self) -> LiveEntry:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _remove_stale(directory: Path) -> None:
    """Entries left by processes killed before they could remove them."""
    for path in directory.glob("*.json"):
        try:
            info = json.loads(path.read_bytes())
            if _alive(int(info["pid"]), info.get("start")):
                continue
        except (OSError, ValueError, KeyError, TypeError):
            pass
        for stale in (path, path.with_suffix(".log")):
            with contextlib.suppress(OSError):
                stale.unlink()
