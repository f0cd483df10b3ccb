"""Points on a Dask cluster: any deployment (`dask scheduler` + `dask worker`, dask-jobqueue on
Slurm or PBS, Kubernetes) that can run gitexp.

The machine that starts the sweep sends each worker the snapshot (as a git bundle through
Dask, or through a git remote both reach) and the data through the DVC remote. A worker keeps
one bare repository, runs the point in a worktree of it as `gitexp run` would, pushes the run's
data to the DVC remote and sends back the run commit as a bundle; the starting machine fetches
it into `refs/runs/` (create-only), so the result is the same as a local run's. When a worker
dies, Dask runs its task again elsewhere (up to `distributed.scheduler.allowed-failures`
times); nothing is recorded until a run comes back whole.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitexp.core.names import RUNS_PREFIX
from gitexp.dvc.data import DataEntry, Obj, collect, transfer_objects
from gitexp.errors import GitexpError, RemoteError, UsageError
from gitexp.store.git import RefExistsError, Repo
from gitexp.store.snapshot import Target, read_pointer_files
from gitexp.sweeps.pool import PointResult
from gitexp.sweeps.queue import Entry
from gitexp.sweeps.scheduler import read_record
from gitexp.sweeps.worktrees import has_data, point_worktree
from gitexp.workflows.remote import check_remote

Warn = Callable[[str], None]
SNAPSHOTS = "refs/gitexp/snapshots/"
SCRATCH = "refs/gitexp-fetch/cluster/"
_SAFE = ["-c", "protocol.ext.allow=never", "-c", "transfer.fsckObjects=true"]


def _client(address: str) -> Any:
    try:
        from distributed import Client
    except ImportError:
        raise UsageError("--cluster needs Dask: pip install 'gitexp[dask]'") from None
    try:
        return Client(address, timeout="15s")
    except (OSError, TimeoutError) as exc:
        raise RemoteError(f"could not reach the Dask scheduler at {address}: {exc}") from None


@dataclass
class _Task:
    entry: Entry
    future: Any
    started: float
    stop: Any  # a distributed.Event


class DaskPool:
    """Runs points as Dask tasks; the scheduler loop treats it like the local pool."""

    def __init__(self, repo: Repo, address: str, remote: str | None, gpus: int | None,
                 warn: Warn) -> None:  # fmt: skip
        self.repo = repo
        self.warn = warn
        self.remote = check_remote(repo, remote) if remote else None
        self.gpus = gpus
        self.client = _client(address)
        self.workers: dict[str, _Task] = {}
        self.token = uuid.uuid4().hex[:12]
        self._snapshots: dict[tuple[str, str], tuple[str, Any]] = {}  # (base, tree) -> sent
        self._identity = _identity(repo)
        self._capacity = (0.0, 1)
        if gpus and not any(
            (w.get("resources") or {}).get("GPU")
            for w in self.client.scheduler_info().get("workers", {}).values()
        ):
            warn("no Dask worker has a GPU resource yet (dask worker --resources GPU=N); "
                 "the runs wait for one")  # fmt: skip

    def _snapshot(self, base: str, tree: str) -> tuple[str, Any]:
        """The commit (tree on base) the workers start from, and how it gets to them."""
        from gitexp.workflows.run import identity_env

        if (base, tree) in self._snapshots:
            return self._snapshots[(base, tree)]
        env = identity_env(self.repo.author_ident())
        commit = self.repo.commit_tree(tree, base, "gitexp sweep snapshot\n", env)
        _push_data(self.repo, commit)
        ref = SNAPSHOTS + commit
        self.repo.try_update_refs([f"update {ref} {commit}"], "gitexp cluster snapshot")
        try:
            if self.remote:
                self.repo.git([*_SAFE, "push", "--quiet", "--", self.remote, f"{ref}:{ref}"],
                              write=True)  # fmt: skip
                carrier = None
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / "snapshot.bundle"
                    self.repo.git(["bundle", "create", "-q", str(path), ref], write=True)
                    # on every worker: tasks then go to any worker, not to where the data is
                    carrier = self.client.scatter(path.read_bytes(), hash=False, broadcast=True)
        finally:
            self.repo.try_update_refs([f"delete {ref} {commit}"], "gitexp cluster snapshot")
        self._snapshots[(base, tree)] = (commit, carrier)
        return commit, carrier

    def start(self, entry: Entry, env: dict[str, str], keep_fds: list[int]) -> None:
        from distributed import Event

        base, tree = self.repo.text(["rev-parse", f"{entry.oid}^", f"{entry.oid}^{{tree}}"]).split()
        commit, bundle = self._snapshot(base, tree)
        url = self.remote
        if url and "://" not in url:  # a configured remote: the workers need its URL
            url = self.repo.text(["remote", "get-url", url])
        stop = Event(f"gitexp-stop-{self.token}-{uuid.uuid4().hex[:8]}", client=self.client)
        payload = {
            "spec": entry.spec.to_json(),
            "snapshot": commit,
            "remote": url,
            "identity": self._identity,
            "env": env,
            "gpus": self.gpus,
            "stop": stop.name,
            "data": has_data(self.repo, tree),
        }
        resources = {"GPU": self.gpus} if self.gpus else None
        future = self.client.submit(run_remote_point, payload, bundle, pure=False,
                                    key=f"gitexp-{entry.name}-{uuid.uuid4().hex[:8]}",
                                    resources=resources)  # fmt: skip
        self.workers[entry.name] = _Task(entry, future, time.time(), stop)

    def wait(self, timeout: float) -> list[tuple[Entry, PointResult]]:
        from distributed import wait as dask_wait

        if not self.workers:
            time.sleep(timeout)
            return []
        futures = [t.future for t in self.workers.values()]
        with contextlib.suppress(TimeoutError):
            dask_wait(futures, timeout=timeout, return_when="FIRST_COMPLETED")
        ended = []
        for name, task in list(self.workers.items()):
            if task.future.done():
                del self.workers[name]
                ended.append((task.entry, self._collect(task)))
        return ended

    def _collect(self, task: _Task) -> PointResult:
        from distributed import KilledWorker

        try:
            reply = task.future.result()
        except KilledWorker:
            return PointResult("lost", None, None, "the Dask workers running it died")
        except Exception as exc:  # the task's own error, raised again here by Dask
            if type(exc).__name__ == "CancelledError":
                return PointResult("not-started", None, None, "cancelled")
            return PointResult("error", None, None, f"on the cluster: {exc}".splitlines()[0])
        outcome = reply["outcome"]
        commit = None
        if reply.get("bundle"):
            try:
                commit = _import_run(self.repo, task.entry.name, reply["bundle"])
            except GitexpError as exc:
                return PointResult("error", outcome.get("exit_code"), None, str(exc))
            self._fetch_data(commit)
        return PointResult(outcome["status"], outcome.get("exit_code"), commit,
                           outcome.get("error"))  # fmt: skip

    def _fetch_data(self, commit: str) -> None:
        """The run's data into the local cache, so the run is here as a local one would be."""
        objects = _data_objects(read_record(self.repo, commit))
        if objects:
            try:
                transfer_objects(self.repo.root, objects, push=False)
            except GitexpError as exc:
                self.warn(f"the run's data stays in the DVC remote for now ({exc})")

    def signal(self, name: str | None, signum: int) -> None:
        """Asks the workers to stop runs: each is recorded as interrupted."""
        for task in list(self.workers.values()):
            if name is None or task.entry.name == name:
                with contextlib.suppress(Exception):
                    task.stop.set()

    def running(self) -> int:
        return len(self.workers)

    def standby(self) -> int:
        return 0  # Dask queues the tasks itself

    def go(self, count: int) -> None:
        pass

    def capacity(self) -> int:
        """Without -j: as many runs at once as the cluster has worker threads now."""
        if time.time() - self._capacity[0] > 5:
            workers = self.client.scheduler_info().get("workers", {}).values()
            self._capacity = (time.time(), max(1, sum(w.get("nthreads", 1) for w in workers)))
        return self._capacity[1]

    def close(self) -> None:
        for task in self.workers.values():
            task.future.cancel()
        with contextlib.suppress(Exception):
            self.client.close()


def _identity(repo: Repo) -> dict[str, str]:
    """The user's git identity, for the run commits the workers make."""
    ident = repo.author_ident()
    if not ident or "<" not in ident:
        return {}
    name, _, email = ident.partition(" <")
    email = email.rstrip(">")
    return {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}  # fmt: skip


def _data_objects(record: dict[str, Any] | None) -> list[Obj]:
    """The DVC objects of a run's data, from its record."""
    data = (record or {}).get("data") or {}
    entries = (DataEntry.from_json(path, item) for path, item in data.items())
    return [entry.obj for entry in entries if entry is not None]


def _push_data(repo: Repo, commit: str) -> None:
    """The snapshot's data to the DVC remote, where the workers get it."""
    target = Target(label="snapshot", rev=commit)
    with repo.batch_reader() as reader:
        tracked = collect(read_pointer_files(repo, target, reader))
    if tracked:
        try:
            transfer_objects(repo.root, [e.obj for e in tracked.values()], push=True)
        except RemoteError as exc:
            raise RemoteError(
                f"the cluster's workers get data from the DVC remote: {exc}"
            ) from None


def _import_run(repo: Repo, name: str, bundle: bytes) -> str:
    """Fetches a run commit from a worker's bundle into refs/runs/<name>, never over one."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.bundle"
        path.write_bytes(bundle)
        scratch = SCRATCH + name
        repo.git([*_SAFE, "fetch", "--quiet", "--no-tags", "--", str(path),
                  f"+{RUNS_PREFIX}{name}:{scratch}"], write=True)  # fmt: skip
    commit = repo.text(["rev-parse", "--verify", "--end-of-options", scratch])
    try:
        repo.create_ref(RUNS_PREFIX + name, commit, f"gitexp sweep: {name} from the cluster")
    except RefExistsError:
        raise UsageError(f"run '{name}' came back from the cluster, but a run of that name "
                         "exists here already; kept the local one") from None  # fmt: skip
    finally:
        repo.try_update_refs([f"delete {scratch} {commit}"], "gitexp cluster")
    return commit


# --- on a Dask worker -------------------------------------------------------------------------

_gpu_lock = threading.Lock()
_gpus_taken: set[str] = set()


def _worker_repo(payload: dict[str, Any], bundle: bytes | None) -> Repo:
    """This worker's bare repository, with the snapshot in it."""
    from distributed import get_worker

    home = Path(get_worker().local_directory) / "gitexp"
    home.mkdir(parents=True, exist_ok=True)
    path = home / "repo.git"
    repo = Repo(root=path, git_dir=path, common_dir=path)
    with open(home / "repo.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (path / "HEAD").exists():
            Repo(home, home, home).git(["init", "-q", "--bare", str(path)], write=True)
        commit = payload["snapshot"]
        if repo.git(["cat-file", "-e", f"{commit}^{{commit}}"], check=False).returncode != 0:
            ref = SNAPSHOTS + commit
            with tempfile.TemporaryDirectory() as tmp:
                source = payload["remote"]
                if bundle is not None:
                    source = str(Path(tmp) / "snapshot.bundle")
                    Path(source).write_bytes(bundle)
                repo.git([*_SAFE, "fetch", "--quiet", "--no-tags", "--", source, f"{ref}:{ref}"],
                         write=True)  # fmt: skip
    return repo


def _take_gpus(count: int | None) -> list[str] | None:
    if not count:
        return None
    from gitexp.store.environment import gpu_models

    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    devices = listed.split(",") if listed else [str(i) for i in range(len(gpu_models()))]
    with _gpu_lock:
        free = [d for d in devices if d not in _gpus_taken][:count]
        if len(free) < count:
            raise RuntimeError(f"this worker has no {count} free GPU(s) of {devices}")
        _gpus_taken.update(free)
    return free


def run_remote_point(payload: dict[str, Any], bundle: bytes | None) -> dict[str, Any]:
    """A Dask task: one point in a worktree of this worker's repository."""
    from distributed import Event

    from gitexp.sweeps.queue import EntrySpec
    from gitexp.workflows.execute import LogCapture, SignalGuard, run_command

    spec = EntrySpec.from_json(payload["spec"])
    stop = Event(payload["stop"])
    if stop.is_set():  # the sweep stopped before this point started
        return {"outcome": {"status": "not-started", "exit_code": None, "commit": None,
                            "error": "the sweep stopped"}, "bundle": None}  # fmt: skip
    repo = _worker_repo(payload, bundle)
    commit = payload["snapshot"]
    base = repo.text(["rev-parse", f"{commit}^"])
    stale = RUNS_PREFIX + spec.name
    if repo.ref_exists(stale):  # left by an earlier attempt on this worker
        repo.try_update_refs([f"delete {stale}"], "gitexp cluster")
    gpus = _take_gpus(payload.get("gpus"))
    try:
        later = lambda cleanup: threading.Thread(target=cleanup).start()  # noqa: E731
        place = repo.root.parent / "worktrees"
        with point_worktree(repo, base, f"{commit}^{{tree}}", payload["data"], place,
                            later) as root, \
                tempfile.TemporaryDirectory() as tmp:  # fmt: skip
            spec_path, result_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
            spec_path.write_text(spec.to_json())
            env = {**os.environ, **payload["env"], **payload["identity"]}
            if gpus is not None:
                env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
            argv = [sys.executable, "-m", "gitexp.sweeps.point", str(spec_path), str(root),
                    str(result_path)]  # fmt: skip
            guard = SignalGuard()  # not entered: Dask runs tasks in threads
            # The run goes in a thread of its own; this one (the task's, where Dask's Event
            # works) watches for a stop from the sweep and passes it on as SIGTERM.
            runner = threading.Thread(
                target=run_command, args=(argv, env, root, LogCapture(), guard), daemon=True
            )
            runner.start()
            stopped = False
            while runner.is_alive():
                runner.join(0.5)
                child = guard.child
                if not stopped and child is not None and child.poll() is None and stop.is_set():
                    child.send_signal(signal.SIGTERM)  # the run is recorded as interrupted
                    stopped = True
            if not result_path.exists():
                raise RuntimeError("the point's gitexp process ended without a result")
            outcome = json.loads(result_path.read_text())
            reply: dict[str, Any] = {"outcome": outcome, "bundle": None,
                                     "host": socket.gethostname()}  # fmt: skip
            if outcome.get("commit"):
                objects = _data_objects(read_record(repo, outcome["commit"]))
                if objects:
                    transfer_objects(root, objects, push=True)
                path = Path(tmp) / "run.bundle"
                repo.git(["bundle", "create", "-q", str(path), stale, "--not", base],
                         write=True)  # fmt: skip
                reply["bundle"] = path.read_bytes()
                repo.try_update_refs([f"delete {stale} {outcome['commit']}"], "gitexp cluster")
            return reply
    finally:
        if gpus:
            with _gpu_lock:
                _gpus_taken.difference_update(gpus)
