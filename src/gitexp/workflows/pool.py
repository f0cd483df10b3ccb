"""Running points on this machine: each in a forked worker process and a worktree of its own.

A fork starts in milliseconds with gitexp already imported (a new `gitexp run` process would
spend ~0.1 s starting), so N workers keep N commands busy. The worker stays in gitexp's
process group, so Ctrl-C at the terminal reaches every command as it would reach one, and each
run is recorded as interrupted. A worker dies with the process that forked it (and its command
with it): the entry's lease is then free and the entry goes back to the queue, never half
recorded.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitexp.dvc.data import preload
from gitexp.errors import GitexpError
from gitexp.store.git import Repo
from gitexp.workflows.point import outcome_json, run_point
from gitexp.workflows.queue import Entry, log_path
from gitexp.workflows.worktrees import has_data, point_worktree

_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


@dataclass(frozen=True)
class PointResult:
    """How a point ended. status: success, failed, interrupted (recorded or not), error
    (gitexp refused to run it; nothing recorded), lost (its worker died), or not-started."""

    status: str
    exit_code: int | None
    commit: str | None
    error: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PointResult:
        return cls(data["status"], data.get("exit_code"), data.get("commit"), data.get("error"))


@dataclass
class _Worker:
    entry: Entry
    pid: int
    fd: int
    started: float
    buffer: bytes = b""
    result: PointResult | None = None
    extra_fds: list[int] = field(default_factory=list)


def _die_with_parent(parent: int) -> None:
    # PR_SET_PDEATHSIG (1): the kernel kills this worker if the sweep process dies.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


class LocalPool:
    """Up to `jobs` points at once, each in a forked worker."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.workers: dict[str, _Worker] = {}
        self._finished: list[int] = []  # pids to reap
        self._data: dict[str, bool] = {}

    def start(self, entry: Entry, env: dict[str, str], keep_fds: list[int]) -> None:
        """Forks a worker for a claimed entry; `keep_fds` (its lease) stay open in it."""
        base, tree = self.repo.text(["rev-parse", f"{entry.oid}^", f"{entry.oid}^{{tree}}"]).split()
        if tree not in self._data:
            self._data[tree] = has_data(self.repo, tree)
            if self._data[tree]:
                preload()  # once here, not in every worker
        log = log_path(self.repo, entry.name)
        log.parent.mkdir(parents=True, exist_ok=True)
        read_fd, write_fd = os.pipe()
        others = [fd for w in self.workers.values() for fd in (w.fd, *w.extra_fds)]
        sys.stdout.flush()
        sys.stderr.flush()
        parent = os.getpid()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        pid = os.fork()
        if pid == 0:  # the worker
            code = 70
            try:
                os.close(read_fd)
                for fd in others:
                    os.close(fd)
                for signum in _SIGNALS:
                    signal.signal(signum, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
                _die_with_parent(parent)
                code = _work(self.repo, entry, base, tree, self._data[tree], env, log, write_fd)
            except KeyboardInterrupt:
                code = 130
            except BaseException:  # a bug: its traceback goes to the point's log
                traceback.print_exc()
            finally:
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        os.close(write_fd)
        self.workers[entry.name] = _Worker(entry, pid, read_fd, time.time(), extra_fds=keep_fds)

    def wait(self, timeout: float) -> list[tuple[Entry, PointResult]]:
        """Points that ended within `timeout` seconds."""
        self._reap(block=False)
        if not self.workers:
            time.sleep(timeout)
            return []
        by_fd = {w.fd: w for w in self.workers.values()}
        try:
            ready, _, _ = select.select(list(by_fd), [], [], timeout)
        except InterruptedError:
            ready = []
        ended = []
        for fd in ready:
            worker = by_fd[fd]
            chunk = os.read(fd, 65536)
            worker.buffer += chunk
            if b"\n" in worker.buffer and worker.result is None:
                line = worker.buffer.split(b"\n", 1)[0]
                worker.result = PointResult.from_json(json.loads(line))
            if chunk and worker.result is None:
                continue
            result = worker.result or self._died(worker)
            os.close(fd)
            del self.workers[worker.entry.name]
            self._finished.append(worker.pid)
            ended.append((worker.entry, result))
        return ended

    def _died(self, worker: _Worker) -> PointResult:
        _, status = os.waitpid(worker.pid, 0)
        self._finished = [p for p in self._finished if p != worker.pid]
        if os.WIFSIGNALED(status):
            how = f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
        else:
            how = f"exited with {os.WEXITSTATUS(status)}"
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 130:
            return PointResult("not-started", None, None, "interrupted before its command started")
        return PointResult("lost", None, None, f"its worker {how}; see 'gitexp queue logs'")

    def _reap(self, block: bool) -> None:
        for pid in list(self._finished):
            with contextlib.suppress(ChildProcessError):
                done, _ = os.waitpid(pid, 0 if block else os.WNOHANG)
                if not done:
                    continue
            self._finished.remove(pid)

    def signal(self, name: str | None, signum: int) -> None:
        """Sends a signal to one worker, or to all (the worker passes SIGTERM on to the
        command and records the run as interrupted). A Ctrl-C for all has reached every
        worker and command from the terminal already (they share its process group)."""
        if name is None and signum == signal.SIGINT:
            return
        for worker in list(self.workers.values()):
            if name is None or worker.entry.name == name:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signum)

    def capacity(self) -> int:
        return 1  # without -j, one run at a time

    def close(self) -> None:
        self._reap(block=True)


def _work(repo: Repo, entry: Entry, base: str, tree: str, data: bool, env: dict[str, str],
          log: Path, result_fd: int) -> int:  # fmt: skip
    """In the worker: output to the point's log, then the run in its own worktree."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.environ.update(env)

    def warn(message: str) -> None:
        print(f"gitexp: warning: {message}", file=sys.stderr, flush=True)

    def send(result: dict[str, Any]) -> None:
        os.write(result_fd, (json.dumps(result) + "\n").encode())
        os.close(result_fd)

    print(f"gitexp: running {entry.name}: {' '.join(entry.spec.command)}", flush=True)
    sent = False
    try:
        with point_worktree(repo, base, tree, data) as root:
            result = outcome_json(run_point(root, entry.spec, warn))
            send(result)  # before the worktree is removed: the slot is free already
            sent = True
    except GitexpError as exc:
        print(f"gitexp: error: {exc}", file=sys.stderr, flush=True)
        if not sent:
            send(outcome_json(None, exc))
    return 0
