"""Running points on this machine: each in a forked worker process and a worktree of its own.

A fork starts in milliseconds with gitexp already imported (a new `gitexp run` process would
spend ~0.1 s starting). A worker prepares its point (worktree, overrides, checks) while other
commands run, then waits on a pipe: when a command ends, a ready worker starts its own at once
and the ended one records its run meanwhile, so N commands keep running back to back.

Workers stay in gitexp's process group, so Ctrl-C at the terminal reaches every command as it
would reach one, and each run is recorded as interrupted. A worker dies with the process that
forked it (and its command with it): the entry's lease is then free and the entry goes back to
the queue, never half recorded.
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
from gitexp.errors import GitexpError, Interrupted
from gitexp.store.git import Repo
from gitexp.sweeps.point import outcome_json, run_point
from gitexp.sweeps.queue import Entry, log_path
from gitexp.sweeps.worktrees import has_data, point_worktree

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
    fd: int  # the worker's messages: events, then its result
    go_fd: int | None  # written to start the command; None once it has started
    started: float
    state: str = "preparing"  # then ready, running (its command), recording
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
    """Forked workers; the scheduler says how many commands run at once (`go`)."""

    def __init__(self, repo: Repo, fail_fast: bool = False) -> None:
        self.repo = repo
        # With --fail-fast a slot stays taken until the run's status is known.
        self.busy_states = ("running", "recording") if fail_fast else ("running",)
        self.workers: dict[str, _Worker] = {}
        self._finished: list[int] = []  # pids to reap
        self._data: dict[str, bool] = {}

    def start(self, entry: Entry, env: dict[str, str], keep_fds: list[int]) -> None:
        """Forks a worker for a claimed entry, which prepares it and waits for `go`.
        `keep_fds` (its lease) stay open in it; the other workers' descriptors do not."""
        base, tree = self.repo.text(["rev-parse", f"{entry.oid}^", f"{entry.oid}^{{tree}}"]).split()
        if tree not in self._data:
            self._data[tree] = has_data(self.repo, tree)
            if self._data[tree]:
                preload()  # once here, not in every worker
        log = log_path(self.repo, entry.name)
        log.parent.mkdir(parents=True, exist_ok=True)
        read_fd, write_fd = os.pipe()
        go_read, go_write = os.pipe()
        others = [fd for w in self.workers.values() for fd in (w.fd, w.go_fd, *w.extra_fds)]
        sys.stdout.flush()
        sys.stderr.flush()
        parent = os.getpid()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        pid = os.fork()
        if pid == 0:  # the worker
            code = 70
            try:
                for fd in (read_fd, go_write, *others):
                    if fd is not None:
                        os.close(fd)
                for signum in _SIGNALS:
                    signal.signal(signum, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
                _die_with_parent(parent)
                code = _work(self.repo, entry, (base, tree, self._data[tree]), env, log,
                             write_fd, go_read)  # fmt: skip
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
        os.close(go_read)
        self.workers[entry.name] = _Worker(entry, pid, read_fd, go_write, time.time(),
                                           extra_fds=keep_fds)  # fmt: skip

    def running(self) -> int:
        """Commands running, or told to start."""
        return sum(1 for w in self.workers.values() if w.state in self.busy_states)

    def standby(self) -> int:
        """Workers preparing their point or ready to start it."""
        return sum(1 for w in self.workers.values() if w.state in ("preparing", "ready"))

    def go(self, count: int) -> None:
        """Starts the commands of up to `count` ready workers, in queue order."""
        for worker in list(self.workers.values()):
            if count <= 0 or worker.state == "preparing":
                return
            if worker.state == "ready" and worker.go_fd is not None:
                os.write(worker.go_fd, b"g")
                self._close_go(worker)
                worker.state = "running"
                worker.started = time.time()
                count -= 1

    def drop_standby(self) -> None:
        """Workers that have not started their command stop without starting it."""
        for worker in self.workers.values():
            if worker.state in ("preparing", "ready"):
                self._close_go(worker)

    def _close_go(self, worker: _Worker) -> None:
        if worker.go_fd is not None:
            os.close(worker.go_fd)
            worker.go_fd = None

    def wait(self, timeout: float) -> list[tuple[Entry, PointResult]]:
        """Points that ended within `timeout` seconds (it returns early on any event)."""
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
            while b"\n" in worker.buffer and worker.result is None:
                line, worker.buffer = worker.buffer.split(b"\n", 1)
                message = json.loads(line)
                if "event" in message:
                    worker.state = {"ready": "ready", "exited": "recording"}[message["event"]]
                else:
                    worker.result = PointResult.from_json(message)
            if chunk and worker.result is None:
                continue
            result = worker.result or self._died(worker)
            os.close(fd)
            self._close_go(worker)
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
        try:
            tail = log_path(self.repo, worker.entry.name).read_text(errors="replace")
            tail = " | ".join(tail.strip().splitlines()[-3:])
        except OSError:
            tail = ""
        return PointResult("lost", None, None, f"its worker {how}: {tail}"[:500])

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
        if name is None:
            self.drop_standby()  # they stop without starting their command
            if signum == signal.SIGINT:
                return
        for worker in list(self.workers.values()):
            if name is not None and worker.entry.name != name:
                continue
            if worker.state in ("preparing", "ready"):
                self._close_go(worker)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signum)

    def capacity(self) -> int:
        return 1  # without -j, one run at a time

    def close(self) -> None:
        self._reap(block=True)


def _work(repo: Repo, entry: Entry, snapshot: tuple[str, str, bool], env: dict[str, str],
          log: Path, result_fd: int, go_fd: int) -> int:  # fmt: skip
    """In the worker: output to the point's log, then the run in its own worktree."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.environ.update(env)

    def warn(message: str) -> None:
        print(f"gitexp: warning: {message}", file=sys.stderr, flush=True)

    def send(message: dict[str, Any]) -> None:
        os.write(result_fd, (json.dumps(message) + "\n").encode())

    def on_step(phase: str) -> None:
        send({"event": phase})
        if phase == "ready" and os.read(go_fd, 1) != b"g":  # the sweep stopped meanwhile
            raise Interrupted(f"run '{entry.name}' was not started: the sweep stopped")

    print(f"gitexp: running {entry.name}: {' '.join(entry.spec.command)}", flush=True)
    sent = False
    base, tree, data = snapshot
    try:
        with point_worktree(repo, base, tree, data) as root:
            send(outcome_json(run_point(root, entry.spec, warn, on_step)))
            sent = True  # before the worktree is removed: the scheduler goes on meanwhile
    except GitexpError as exc:
        print(f"gitexp: error: {exc}", file=sys.stderr, flush=True)
        if not sent:
            send(outcome_json(None, exc))
    os.close(result_fd)
    return 0
