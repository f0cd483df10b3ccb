"""Draining entries: up to N at once, on this machine or a Dask cluster, until none is left.

The loop claims an entry (lease first, then the ref transaction), starts it on the executor,
and when it ends takes it off the queue. Signals stop it cleanly: Ctrl-C reaches every command
from the terminal and each run is recorded as interrupted; SIGTERM or SIGHUP sent to gitexp
alone are passed on to every run. Entries that never started go back to the queue.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gitexp.store.git import Repo
from gitexp.store.snapshot import RECORD_PATH, parse_record
from gitexp.sweeps import queue
from gitexp.sweeps.pool import PointResult
from gitexp.sweeps.queue import Entry, Lease
from gitexp.workflows.run import identity_env

TICK = 0.25  # seconds between progress updates
WATCH_POLL = 1.0  # seconds between looks at the queue when it is empty (queue start --watch)


@dataclass(frozen=True)
class Finished:
    entry: Entry
    result: PointResult
    duration: float
    record: dict[str, Any] | None  # the run record, when the run was recorded


@dataclass
class Progress:
    total: int = 0
    done: int = 0
    failed: int = 0
    running: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    eta: float | None = None  # seconds
    finished: list[Finished] = field(default_factory=list)


class Executor(Protocol):
    workers: dict[str, Any]

    def start(self, entry: Entry, env: dict[str, str], keep_fds: list[int]) -> None: ...
    def wait(self, timeout: float) -> list[tuple[Entry, PointResult]]: ...
    def signal(self, name: str | None, signum: int) -> None: ...
    def running(self) -> int: ...
    def standby(self) -> int: ...
    def go(self, count: int) -> None: ...
    def capacity(self) -> int: ...
    def close(self) -> None: ...


class Source(Protocol):
    """Where the points come from: queue entries, or an optimizer that proposes them."""

    def take(self) -> tuple[Entry, Lease] | None: ...
    def pending(self) -> int: ...
    def done(self, finished: Finished) -> None: ...
    def exhausted(self) -> bool: ...


class QueueSource:
    """Queued entries, oldest first; `names` limits it to some (one sweep's)."""

    def __init__(self, repo: Repo, names: set[str] | None = None) -> None:
        self.repo = repo
        self.names = names
        self._pending = 0

    def take(self) -> tuple[Entry, Lease] | None:
        waiting = [
            e
            for e in queue.list_entries(self.repo, ("queued",))
            if self.names is None or e.name in self.names
        ]
        self._pending = len(waiting)
        for entry in waiting:
            claimed = queue.claim_leased(self.repo, entry)
            if claimed is not None:
                self._pending -= 1
                return claimed
        return None

    def pending(self) -> int:
        return self._pending

    def done(self, finished: Finished) -> None:
        pass

    def exhausted(self) -> bool:
        return self._pending == 0


class GpuSlots:
    """Hands out `per_run` GPUs to each run from `devices`, so concurrent runs never share."""

    def __init__(self, devices: list[str], per_run: int) -> None:
        self.free = list(devices)
        self.per_run = per_run
        self.capacity = len(devices) // per_run

    def take(self) -> list[str] | None:
        if len(self.free) < self.per_run:
            return None
        taken, self.free = self.free[: self.per_run], self.free[self.per_run :]
        return taken

    def give(self, devices: list[str]) -> None:
        self.free = sorted(self.free + devices, key=lambda d: (len(d), d))


def read_record(repo: Repo, commit: str) -> dict[str, Any] | None:
    proc = repo.git(["cat-file", "blob", f"{commit}:{RECORD_PATH}"], check=False)
    return parse_record(proc.stdout) if proc.returncode == 0 else None


class Scheduler:
    def __init__(
        self,
        repo: Repo,
        executor: Executor,
        jobs: int | None,
        *,
        gpus: GpuSlots | None = None,
        fail_fast: bool = False,
        watch: bool = False,
        on_event: Callable[[str, Progress, Finished | None], None] = lambda *_: None,
    ) -> None:
        self.repo = repo
        self.executor = executor
        self.requested_jobs = jobs  # None: the executor's own capacity (a cluster's threads)
        self.gpus_capacity = gpus.capacity if gpus else None
        self.gpus = gpus
        self.fail_fast = fail_fast
        self.watch = watch
        self.on_event = on_event
        self.stopping: int | None = None  # the signal that stops the drain
        self.failed_fast = False
        self.progress = Progress()
        self._leases: dict[str, Lease] = {}
        self._devices: dict[str, list[str]] = {}
        self._started: dict[str, float] = {}
        self._identity = identity_env(repo.author_ident())

    @property
    def jobs(self) -> int:
        jobs = self.requested_jobs or self.executor.capacity()
        return min(jobs, self.gpus_capacity) if self.gpus_capacity else jobs

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self.stopping is None:
            self.stopping = signum
            self.executor.signal(None, signum)

    def run(self, source: Source) -> Progress:
        previous = {}
        if threading.current_thread() is threading.main_thread():  # else Python has no handlers
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                previous[signum] = signal.signal(signum, self._on_signal)
        try:
            self._loop(source)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.executor.close()
        return self.progress

    def _loop(self, source: Source) -> None:
        last_tick = 0.0
        while True:
            self._handle_kill_requests()
            if self.stopping is None:
                self._start_more(source)
            finished = self.stopping is not None or (source.exhausted() and not self.watch)
            if not self.executor.workers and finished:
                return
            self._update(source)
            for entry, result in self.executor.wait(TICK if self.executor.workers else WATCH_POLL):
                self._ended(entry, result, source)
                self._update(source)
            if time.time() - last_tick >= TICK:
                last_tick = time.time()
                self.on_event("tick", self.progress, None)

    def _start_more(self, source: Source) -> None:
        """Starts commands up to -j, and prepares as many points again to start next (not
        with GPUs: a waiting point would hold its GPUs)."""
        self.executor.go(self.jobs - self.executor.running())
        prefetch = 0 if self.gpus else self.jobs
        while self.executor.running() + self.executor.standby() < self.jobs + prefetch:
            devices = self.gpus.take() if self.gpus else None
            if self.gpus and devices is None:
                return
            taken = source.take()
            if taken is None:
                if devices:
                    self.gpus.give(devices)  # type: ignore[union-attr]
                return
            entry, lease = taken
            env = {"CUDA_VISIBLE_DEVICES": ",".join(devices)} if devices is not None else {}
            self._leases[entry.name] = lease
            self._started[entry.name] = time.time()
            if devices is not None:
                self._devices[entry.name] = devices
            assert lease.fd is not None
            self.executor.start(entry, env, [lease.fd])
            worker = self.executor.workers.get(entry.name)
            lease.update({"pid": getattr(worker, "pid", os.getpid()), "driver": os.getpid()})
            self._update(source)
            self.on_event("started", self.progress, None)
        self.executor.go(self.jobs - self.executor.running())

    def _ended(self, entry: Entry, result: PointResult, source: Source) -> None:
        lease = self._leases.pop(entry.name)
        if entry.name in self._devices:
            self.gpus.give(self._devices.pop(entry.name))  # type: ignore[union-attr]
        started = self._started.pop(entry.name, time.time())
        if result.status == "not-started" or (
            result.status == "interrupted" and result.commit is None and result.error
        ):
            if entry.spec.keep:
                queue.requeue(self.repo, entry)
            else:  # a sweep without --queue: what did not start is dropped
                self.repo.try_update_refs([f"delete {entry.ref} {entry.oid}"], "gitexp sweep")
                queue.log_path(self.repo, entry.name).unlink(missing_ok=True)
            lease.release()
            return
        record = read_record(self.repo, result.commit) if result.commit else None
        outcome = {"status": result.status, "exit_code": result.exit_code,
                   "run": result.commit, "error": result.error}  # fmt: skip
        queue.finish(self.repo, entry, outcome, self._identity)
        lease.release()
        if result.commit or not entry.spec.keep:  # the run has the log, or no entry stays
            queue.log_path(self.repo, entry.name).unlink(missing_ok=True)
        duration = (record or {}).get("duration") or (time.time() - started)
        finished = Finished(entry, result, float(duration), record)
        self.progress.finished.append(finished)
        source.done(finished)
        self._update(source)
        if result.status != "success" and self.fail_fast and self.stopping is None:
            self.failed_fast = True
            self.stopping = signal.SIGTERM
            self.executor.signal(None, signal.SIGTERM)
        self.on_event("finished", self.progress, finished)

    def _update(self, source: Source) -> None:
        p = self.progress
        p.done = len(p.finished)
        p.failed = sum(1 for f in p.finished if f.result.status != "success")
        p.running = [n for n, w in self.executor.workers.items()
                     if getattr(w, "state", "running") == "running"]  # fmt: skip
        started = len(self.executor.workers)
        total = p.done + started + (source.pending() if self.stopping is None else 0)
        p.total = total if self.stopping is not None else max(p.total, total)
        durations = [f.duration for f in p.finished]
        if durations and self.jobs:
            mean = sum(durations) / len(durations)
            now = time.time()
            left = sum(max(mean - (now - self._started.get(n, now)), 0.0) for n in p.running)
            p.eta = (left + source.pending() * mean) / self.jobs
        else:
            p.eta = None

    def _handle_kill_requests(self) -> None:
        for name in list(self.executor.workers):
            if queue.kill_requested(self.repo, name):
                with contextlib.suppress(Exception):
                    self.executor.signal(name, signal.SIGTERM)
