"""The queue of runs to do, kept in git so it survives reboots and can be pushed.

An entry is a commit whose tree is the snapshot of the workspace it was queued from, whose
parent is the commit HEAD pointed at (the run's base), and whose message holds what to run.
Its ref says where it is: `refs/gitexp/queue/<run>` waiting, `refs/gitexp/running/<run>`
claimed by a worker, `refs/gitexp/done/<run>` finished (a child commit holding the outcome).
Moving an entry is one `update-ref` transaction that checks the old value, so two workers
never run the same entry: a sweep of N points records N runs, whoever runs them.

While a worker runs an entry it holds an flock on the entry's lease file; a lease nobody holds
means its worker died, and the entry goes back to the queue (`requeue_stale`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gitexp.core.names import validate_name
from gitexp.errors import UsageError
from gitexp.store.git import Repo
from gitexp.store.journal import try_flock
from gitexp.store.records import iso_time

QUEUED = "refs/gitexp/queue/"
RUNNING = "refs/gitexp/running/"
DONE = "refs/gitexp/done/"
STATES = {QUEUED: "queued", RUNNING: "running", DONE: "done"}
_SUBJECT = "gitexp queue: "
_END = "\x1e"  # ends each record of the for-each-ref listing


@dataclass(frozen=True)
class EntrySpec:
    """What to run: as `gitexp run` would be called, from `cwd` of the snapshot."""

    name: str
    command: tuple[str, ...]
    overrides: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    message: str | None = None
    outs: tuple[str, ...] = ()  # relative to cwd
    record_failed: bool = True
    cwd: str = "."
    branch: str | None = None
    sweep: str | None = None
    queued: str = ""  # when, ISO 8601
    order: int = 0  # position in its sweep
    keep: bool = True  # keep a `done` entry after the run (queued with --queue)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> EntrySpec:
        """Parses an entry that may come from another clone: every field is checked."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        strings = lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)  # noqa: E731
        checks = {
            "name": lambda v: isinstance(v, str) and validate_name(v) == v,
            "command": strings,
            "overrides": strings,
            "outs": strings,
            "tags": lambda v: (
                isinstance(v, dict)
                and all(isinstance(k, str) and isinstance(x, str) for k, x in v.items())
            ),
            "message": lambda v: v is None or isinstance(v, str),
            "record_failed": lambda v: isinstance(v, bool),
            "keep": lambda v: isinstance(v, bool),
            "cwd": lambda v: isinstance(v, str) and not v.startswith("/") and ".." not in v,
            "branch": lambda v: v is None or isinstance(v, str),
            "sweep": lambda v: v is None or isinstance(v, str),
            "queued": lambda v: isinstance(v, str),
            "order": lambda v: isinstance(v, int) and not isinstance(v, bool),
        }
        for key, check in checks.items():
            if key not in data or not check(data[key]):
                raise ValueError(f"bad field '{key}'")
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in checks}
        return cls(**fields)


@dataclass(frozen=True)
class Entry:
    name: str
    state: str  # queued, running or done
    oid: str  # the entry commit (for done: the outcome commit)
    spec: EntrySpec
    outcome: dict[str, Any] | None = None  # for done entries

    @property
    def ref(self) -> str:
        return {"queued": QUEUED, "running": RUNNING, "done": DONE}[self.state] + self.name


def state_dir(repo: Repo) -> Path:
    """Leases, logs and worktrees, shared by all worktrees of the repository."""
    return repo.common_dir / "gitexp" / "queue"


def _file_id(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()[:16]


def log_path(repo: Repo, name: str) -> Path:
    return state_dir(repo) / "logs" / f"{_file_id(name)}.log"


def _lease_path(repo: Repo, name: str) -> Path:
    return state_dir(repo) / "leases" / f"{_file_id(name)}.json"


# --- reading ----------------------------------------------------------------------------------


def list_entries(repo: Repo, states: Iterable[str] = ("queued", "running", "done")) -> list[Entry]:
    """Entries in queue order (when queued, then position), in one git process. Entries whose
    message is not a valid spec are skipped."""
    prefixes = [p for p, s in STATES.items() if s in states]
    fmt = "%(refname)%00%(objectname)%00%(contents:body)%1e"  # %1e is _END
    out = repo.git(["for-each-ref", f"--format={fmt}", "--end-of-options", *prefixes]).stdout
    entries = []
    for record in out.decode("utf-8", "replace").split(_END):
        ref, _, rest = record.strip("\n").partition("\0")
        oid, _, body = rest.partition("\0")
        prefix = next((p for p in prefixes if ref.startswith(p)), None)
        if prefix is None:
            continue
        entry = _parse(ref[len(prefix) :], STATES[prefix], oid, body)
        if entry is not None:
            entries.append(entry)
    done = [e for e in entries if e.state == "done"]
    if done:  # a done entry's commit holds the outcome; its spec is in the parent
        specs = _bodies(repo, [f"{e.oid}^" for e in done])
        entries = [e for e in entries if e.state != "done"]
        for entry, text in zip(done, specs, strict=True):
            spec = _parse(entry.name, "queued", entry.oid, text)
            if spec is not None:
                entries.append(Entry(entry.name, "done", entry.oid, spec.spec, entry.outcome))
    entries.sort(key=lambda e: (e.spec.queued, e.spec.order, e.name))
    return entries


def _parse(name: str, state: str, oid: str, body: str) -> Entry | None:
    try:
        if state == "done":
            outcome = json.loads(body)
            outcome = outcome if isinstance(outcome, dict) else {}
            return Entry(name, state, oid, EntrySpec(name=name, command=()), outcome)
        spec = EntrySpec.from_json(body)
    except (ValueError, UsageError, TypeError):
        return None
    return Entry(name, state, oid, spec) if spec.name == name else None


def _bodies(repo: Repo, revs: Sequence[str]) -> list[str]:
    """Commit message bodies of several revisions, in one git process."""
    out = repo.git(
        ["log", "--no-walk=unsorted", f"--format=%B{_END}", "--end-of-options", *revs, "--"]
    ).stdout.decode("utf-8", "replace")
    texts = [t.strip("\n") for t in out.split(_END)][: len(revs)]
    return [t.split("\n\n", 1)[1] if "\n\n" in t else "" for t in texts]


def taken_names(repo: Repo) -> set[str]:
    """Names of queued and running entries (a new entry must not reuse one)."""
    return {ref.split("/", 3)[3] for ref, _ in repo.list_refs(QUEUED, RUNNING)}


# --- changing ---------------------------------------------------------------------------------


def enqueue(repo: Repo, tree: str, base: str, specs: Sequence[EntrySpec],
            identity_env: dict[str, str]) -> list[Entry]:  # fmt: skip
    """Queues entries in one transaction: all of them, or none when a name is taken."""
    if not specs:
        return []
    messages = [f"{_SUBJECT}{s.name}\n\n{s.to_json()}\n" for s in specs]
    oids = repo.write_commits(tree, base, messages, identity_env)
    commands = [f"create {QUEUED}{s.name} {oid}" for s, oid in zip(specs, oids, strict=True)]
    if not repo.try_update_refs(commands, "gitexp queue"):
        raise UsageError("a run of this sweep was queued meanwhile by another gitexp; try again")
    return [Entry(s.name, "queued", oid, s) for s, oid in zip(specs, oids, strict=True)]


def claim(repo: Repo, entry: Entry) -> Entry | None:
    """Moves a queued entry to running; None if another worker took it first."""
    moved = repo.try_update_refs(
        [f"delete {QUEUED}{entry.name} {entry.oid}", f"create {RUNNING}{entry.name} {entry.oid}"],
        "gitexp queue: claim",
    )
    return Entry(entry.name, "running", entry.oid, entry.spec) if moved else None


def claim_leased(repo: Repo, entry: Entry) -> tuple[Entry, Lease] | None:
    """Takes the entry's lease, then claims it: the lease is held before the entry shows as
    running, so `requeue_stale` never takes a live claim for a dead one."""
    lease = Lease(repo, entry.name)
    if not lease.acquire({"pid": os.getpid(), "driver": os.getpid()}):
        return None
    claimed = claim(repo, entry)
    if claimed is None:
        lease.release()
        return None
    return claimed, lease


def requeue(repo: Repo, entry: Entry) -> bool:
    return repo.try_update_refs(
        [f"delete {RUNNING}{entry.name} {entry.oid}", f"create {QUEUED}{entry.name} {entry.oid}"],
        "gitexp queue: requeue",
    )


def finish(repo: Repo, entry: Entry, outcome: dict[str, Any], identity_env: dict[str, str]) -> None:
    """Takes a running entry off the queue; with `keep`, a done entry holds the outcome."""
    commands = [f"delete {RUNNING}{entry.name} {entry.oid}"]
    if entry.spec.keep:
        outcome = {**outcome, "host": socket.gethostname(), "finished": iso_time(time.time())}
        tree = repo.text(["rev-parse", f"{entry.oid}^{{tree}}"])
        message = f"{_SUBJECT}{entry.name} finished\n\n{json.dumps(outcome, sort_keys=True)}\n"
        (oid,) = repo.write_commits(tree, entry.oid, [message], identity_env)
        commands.append(f"update {DONE}{entry.name} {oid}")
    repo.try_update_refs(commands, "gitexp queue: finish")


def remove(repo: Repo, entries: Sequence[Entry]) -> list[str]:
    """Deletes entries that are queued or done (running ones are stopped with `kill`)."""
    commands = [f"delete {e.ref} {e.oid}" for e in entries if e.state != "running"]
    if commands and not repo.try_update_refs(commands, "gitexp queue: remove"):
        raise UsageError("the queue changed meanwhile; nothing was removed: try again")
    for entry in entries:
        log_path(repo, entry.name).unlink(missing_ok=True)
    return [e.name for e in entries if e.state != "running"]


# --- leases: who runs an entry ----------------------------------------------------------------


class Lease:
    """Held (flock) by the process that runs an entry for as long as it runs; it also says
    where the entry runs, for `queue status`, `logs` and `kill`."""

    def __init__(self, repo: Repo, name: str) -> None:
        self.path = _lease_path(repo, name)
        self.name = name
        self.fd: int | None = None

    def acquire(self, info: dict[str, Any]) -> bool:
        self.fd = try_flock(self.path)
        if self.fd is None:
            return False
        self.update(info)
        return True

    def update(self, info: dict[str, Any]) -> None:
        assert self.fd is not None
        data = json.dumps({"name": self.name, "host": socket.gethostname(), **info}).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(self.fd)
            self.fd = None

    @staticmethod
    def read(repo: Repo, name: str) -> dict[str, Any] | None:
        """The lease's information while its holder lives; None if nobody holds it."""
        path = _lease_path(repo, name)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                try:
                    info = json.loads(os.pread(fd, 65536, 0) or b"{}")
                except ValueError:
                    info = {}
                return info if isinstance(info, dict) else {}
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)


def requeue_stale(repo: Repo) -> list[str]:
    """Entries claimed by a worker that died on this host go back to the queue (its run, if
    any, was never recorded: a run is recorded by its worker or not at all)."""
    back = []
    for entry in list_entries(repo, ("running",)):
        info = Lease.read(repo, entry.name)
        if info is None and requeue(repo, entry):
            back.append(entry.name)
    return back


def request_kill(repo: Repo, name: str) -> dict[str, Any]:
    """Asks the worker that runs `name` to stop it (it is recorded as interrupted)."""
    info = Lease.read(repo, name)
    if info is None:
        raise UsageError(f"'{name}' is not running: see 'gitexp queue list'")
    if info.get("host") != socket.gethostname():
        raise UsageError(f"'{name}' runs on {info.get('host')}: kill it there")
    path = _lease_path(repo, name).with_suffix(".kill")
    path.write_text(str(os.getpid()))
    return info


def kill_requested(repo: Repo, name: str) -> bool:
    path = _lease_path(repo, name).with_suffix(".kill")
    if path.exists():
        path.unlink(missing_ok=True)
        return True
    return False
