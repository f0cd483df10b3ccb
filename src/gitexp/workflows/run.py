"""Runs: capturing one as a commit on refs/runs/<name>, and listing them.

A run's commit has the base (HEAD at start) as parent and the workspace as it was after the
command as tree, plus the run record at .gitexp/run.json and the command's output at
.gitexp/run.log. HEAD, the branch, the index, the stash and the user's files are never written;
only params files that `-S` overrides, and those are journaled first and put back at the end.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitexp import __version__
from gitexp.core import dvcyaml
from gitexp.core.config import DVC_YAML, Config, load_config
from gitexp.core.names import RUNS_PREFIX, generate_name, validate_name
from gitexp.core.params import Override, apply_overrides, load_params, parse_override
from gitexp.core.secrets import redact_text, secret_param
from gitexp.dvc.data import DVC_LOCK, checkout_data
from gitexp.errors import GitexpError, Interrupted, StateError, UsageError
from gitexp.store import environment
from gitexp.store.faults import fault_point
from gitexp.store.git import RefExistsError, Repo
from gitexp.store.journal import Journal, RunLock, recover, write_workspace_file
from gitexp.store.live import LiveEntry
from gitexp.store.records import free_name, iso_time, keep_refs_packed, run_names
from gitexp.store.snapshot import (
    State,
    Target,
    parse_files,
    read_workspace_file,
)
from gitexp.workflows.capture import (
    SHARED_ENVIRONMENT,
    artifact_outs,
    build_tree,
    normalise_out,
    snapshot_inputs,
)
from gitexp.workflows.execute import (
    LogCapture,
    SignalGuard,
    child_environment,
    find_executable,
    run_command,
)

RECORD_VERSION = 2  # 2: environment.json, inputs, carried metrics
FALLBACK_IDENTITY = ("gitexp", "gitexp@localhost")

Warn = Callable[[str], None]


@dataclass(frozen=True)
class RunRequest:
    command: tuple[str, ...]
    name: str | None = None
    overrides: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    message: str | None = None
    record_failed: bool = True
    outs: tuple[str, ...] = ()  # artifacts for DVC, relative to the repository root
    reproduces: str | None = None  # the run this one re-runs (gitexp reproduce)
    base: str | None = None  # the base to record when the workspace's HEAD is not it
    # The user's branch, for a run made in a worktree of gitexp's (a sweep point), whose
    # own HEAD is detached at the user's commit.
    branch: str | None = None
    # Told "ready" just before the command starts (it may wait there, or raise Interrupted)
    # and "exited" when it has ended, before the run is recorded: a sweep prepares its next
    # point while a command runs and starts it as one ends.
    on_step: Callable[[str], None] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class RunOutcome:
    name: str
    commit: str | None  # None when the run was not recorded (--no-record-failed)
    status: str  # success, failed or interrupted
    exit_code: int  # what gitexp exits with


def _override_plan(repo: Repo, specs: Sequence[str]) -> dict[str, bytes]:
    """The new bytes of every params file the overrides touch; nothing is written here.

    Every params file is checked first, so a malformed one stops the run before its command
    starts (row P1).
    """
    config = load_config(lambda p: read_workspace_file(repo, p))
    for path in config.params_files:
        data = read_workspace_file(repo, path)
        if data is not None:
            load_params(data, path)
    by_file: dict[str, list[Override]] = {}
    for spec in specs:
        override = parse_override(spec)
        by_file.setdefault(override.file, []).append(override)
    plan = {}
    for path, overrides in by_file.items():
        full = repo.root / path
        if full.is_symlink() or (full.exists() and not full.is_file()):
            raise UsageError(f"cannot override {path}: it is not a regular file")
        # A folder on the way may be a symlink: the file must really be in the workspace,
        # and not in git's own directory (row S12).
        real = Path(os.path.realpath(full))
        inside = repo.root.resolve() in real.parents
        if not inside or any(d.resolve() in (real, *real.parents) for d in repo.git_dirs()):
            raise UsageError(f"cannot override {path}: it is not a file of this workspace")
        if not full.exists() and not all(o.add for o in overrides):
            raise UsageError(
                f"params file {path} does not exist; to create it, write -S +KEY=VALUE"
            )
        data = full.read_bytes() if full.exists() else b""
        if data:
            load_params(data, path)
        plan[path] = apply_overrides(data, path, overrides)
    return plan


def _read_results(repo: Repo, override_files: Sequence[str], warn: Warn) -> dict[str, Any]:
    """Params and metrics as the command left them, for the run record."""
    config = load_config(lambda p: read_workspace_file(repo, p))
    params_files = list(dict.fromkeys([*config.params_files, *override_files]))
    found = {p: read_workspace_file(repo, p) for p in [*params_files, *config.metrics_files]}
    results = State(target=Target(label="workspace", rev=None))
    parse_files(found, params_files, config.metrics_files, results)
    for path, message in results.errors.items():
        if path in config.metrics_files:
            warn(f"could not read metrics: {message}")
    if not results.metrics and not results.errors:
        warn(f"the command wrote no metrics file ({', '.join(config.metrics_files)})")
    for path, flat in results.params.items():
        for key in (k for k in flat if secret_param(k)):
            warn(
                f"param '{key}' in {path} looks like a secret: it is stored in the run's "
                "commit (show and report mask it); keep secrets in environment variables"
            )
    return {"params": results.params, "metrics": results.metrics, "errors": results.errors}


def _commit_message(name: str, request: RunRequest, command: Sequence[str], status: str,
                    exit_code: int | None, duration: float) -> str:  # fmt: skip
    summary = f"run {name}: {redact_text(' '.join(command)) or '(workspace saved)'}"
    if len(summary) > 72:
        summary = summary[:69] + "..."
    body = f"{request.message.strip()}\n\n" if request.message else ""
    trailers = (
        f"Gitexp-Run: {name}\nStatus: {status}\nExit-Code: {exit_code}\nDuration: {duration:.3f}s\n"
    )
    return f"{summary}\n\n{body}{trailers}"


def identity_env(author: str | None) -> dict[str, str]:
    """Without a git identity, commits get gitexp's own (row G11)."""
    if author is not None:
        return {}
    name, email = FALLBACK_IDENTITY
    return {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }


def resolve_command(repo: Repo, command: Sequence[str]) -> tuple[str, ...]:
    if command:
        return tuple(command)
    if (repo.root / DVC_YAML).exists():
        return ("dvc", "repro")
    raise UsageError("no command given: write it after '--', e.g. gitexp run -- python train.py")


def run_experiment(repo: Repo, request: RunRequest, warn: Warn) -> RunOutcome:
    """Runs the command and records it as a run; see the module docstring."""
    head = repo.head()
    base = request.base or head
    if base is None:
        raise StateError("this repository has no commit yet: make a first commit, then run again")
    operation = repo.in_progress_operation()
    if operation:
        raise StateError(f"{operation} is in progress: finish or abort it, then run again")
    command = resolve_command(repo, request.command)
    name = validate_name(request.name) if request.name else None
    outs = tuple(normalise_out(repo.root, out) for out in request.outs)
    if outs and not (repo.root / ".dvc").is_dir():
        raise UsageError("--out needs DVC in this repository: run 'gitexp init' first")
    request = dataclasses.replace(request, outs=outs)
    for key in request.tags:
        if not key or any(c.isspace() for c in key):
            raise UsageError(f"invalid tag name '{key}': use a name without spaces")
    branch = request.branch or repo.text(["symbolic-ref", "-q", "HEAD"], check=False) or None
    author = repo.author_ident()
    name = free_name(repo, name)
    env = child_environment(name)
    manifest = repo.gitexp_dir / "tmp" / f"manifest.{os.getpid()}.json"
    env["GITEXP_RUN_MANIFEST"] = str(manifest)
    find_executable(command, env)
    for notice in recover(repo):
        warn(notice)

    lock = RunLock(repo)
    journal = Journal(repo, f"run '{name}'")
    with SignalGuard() as guard:
        lock.acquire(name, lambda: guard.received is not None)
        try:
            fault_point("lock-acquired")
            if repo.ref_exists(RUNS_PREFIX + name):  # another run took it meanwhile
                raise UsageError(f"run '{name}' already exists: choose another name with -n")
            plan = _override_plan(repo, request.overrides)
            if plan:
                journal.save(plan, _pipeline_files(repo))
                fault_point("params-journaled")
                for path, data in plan.items():
                    full = repo.root / path
                    mode = full.stat().st_mode & 0o7777 if full.exists() else None
                    write_workspace_file(repo, path, data, mode)
                fault_point("params-written")
            with LiveEntry(repo, name, command, mirror_log=True) as live:
                return _run_and_record(
                    repo, request, name, command, base, head, branch, author, env, plan,
                    guard, journal, warn, live,
                )  # fmt: skip
        finally:
            if journal.path.exists():
                journal.restore()
            lock.release()
            fault_point("lock-released")


def _run_and_record(
    repo: Repo,
    request: RunRequest,
    name: str,
    command: tuple[str, ...],
    base: str,
    started_at: str | None,
    branch: str | None,
    author: str | None,
    env: dict[str, str],
    plan: dict[str, bytes],
    guard: SignalGuard,
    journal: Journal,
    warn: Warn,
    live: LiveEntry,
) -> RunOutcome:
    log = LogCapture(live.write)
    if request.on_step:
        request.on_step("ready")
    if guard.received:  # interrupted before the command could start
        raise Interrupted(f"run '{name}' was interrupted before its command started")
    config = load_config(lambda p: read_workspace_file(repo, p))
    # What the command starts from: the metrics files as they are (a file it does not
    # rewrite is carried over, not its own) and the whole tree, which reproduce starts from.
    before = _digests(repo, config.metrics_files)
    inputs = repo.commit_tree(
        snapshot_inputs(repo, config.max_file_bytes), base, f"inputs of run {name}\n",
        identity_env(author),
    )  # fmt: skip
    # The command starts where the user is, as it would without gitexp.
    workdir = _workdir(repo)
    result = run_command(command, env, workdir, log, guard)
    guard.ignore()
    fault_point("command-exited")
    if request.on_step:
        request.on_step("exited")
    if result.interrupted_by:
        status = "interrupted"
        signum = {"SIGINT": 2, "SIGTERM": 15, "SIGHUP": 1}[result.interrupted_by]
        exit_code = 128 + signum
    else:
        status = "success" if result.exit_code == 0 else "failed"
        exit_code = result.exit_code
    if repo.head() != started_at:
        warn("HEAD moved while the command ran; the run's parent is the commit it started from")
    if status != "success" and not request.record_failed:
        _finish(repo, journal, plan, warn)
        return RunOutcome(name=name, commit=None, status=status, exit_code=exit_code)

    logged = _read_manifest(Path(env["GITEXP_RUN_MANIFEST"]))
    if logged.get("tags"):
        request = dataclasses.replace(request, tags={**logged["tags"], **request.tags})
    if logged.get("artifacts"):
        extra = artifact_outs(repo, logged["artifacts"], warn)
        request = dataclasses.replace(request, outs=tuple(dict.fromkeys([*request.outs, *extra])))
    results = _read_results(repo, list(plan), warn)
    carried = _carried(repo, config, command, status, before)
    results["carried"] = {p: results["metrics"].pop(p) for p in carried if p in results["metrics"]}
    record = _new_record(
        repo,
        name=name,
        command=command,
        status=status,
        exit_code=result.exit_code,
        started=result.started,
        ended=result.ended,
        base=base,
        branch=branch,
        author=author,
        request=request,
        results=results,
    )
    record["interrupted_by"] = result.interrupted_by
    record["cwd"] = workdir.relative_to(repo.root.resolve()).as_posix()
    record["inputs"] = inputs
    commit = _write_run_commit(
        repo, name, record, log, request, command, [base, inputs], author, warn
    )
    _finish(repo, journal, plan, warn)
    return RunOutcome(name=name, commit=commit, status=status, exit_code=exit_code)


def _workdir(repo: Repo) -> Path:
    """Where the command starts: the user's directory, as without gitexp, when it is inside
    the repository (a library caller may be elsewhere: then the repository's root)."""
    here, root = Path.cwd().resolve(), repo.root.resolve()
    return here if here == root or root in here.parents else root


def _read_manifest(path: Path) -> dict[str, Any]:
    """What the Python API logged inside the command: tags and artifacts."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    finally:
        path.unlink(missing_ok=True)
    return data if isinstance(data, dict) else {}


def record_api_run(
    repo: Repo,
    *,
    name: str | None,
    started: float,
    status: str,
    tags: dict[str, str],
    artifacts: Sequence[str],
    log: str,
    parent: str | None,
    warn: Warn,
    extra: dict[str, Any] | None = None,
    take_lock: bool = True,
) -> str:
    """Records a run logged with the Python API outside `gitexp run`, as `gitexp run` would:
    same ref layout, record and invariants. Returns the commit.

    `extra` adds fields to the record (experiment, artifacts, datasets, models). A nested run
    inside `gitexp run` passes `take_lock=False`: the outer run, its own parent process,
    holds the lock and waits for it."""
    base = repo.head()
    if base is None:
        raise StateError("this repository has no commit yet: make a first commit, then run again")
    name = free_name(repo, validate_name(name) if name else None)
    for notice in recover(repo):
        warn(notice)
    lock = RunLock(repo)
    if take_lock:
        lock.acquire(name)
    try:
        outs = tuple(artifact_outs(repo, artifacts, warn))
        request = RunRequest(command=tuple(sys.argv), name=name, tags=dict(tags), outs=outs)
        record = _new_record(
            repo,
            name=name,
            command=[sys.executable, *sys.argv],
            status=status,
            exit_code=None,
            started=started,
            ended=time.time(),
            base=base,
            branch=repo.text(["symbolic-ref", "-q", "HEAD"], check=False) or None,
            author=repo.author_ident(),
            request=request,
            results=_read_results(repo, [], warn),
        )
        record["parent"] = parent
        record.update(extra or {})
        output = LogCapture()
        output.write(log.encode())
        return _write_run_commit(
            repo, name, record, output, request, request.command, base, repo.author_ident(), warn
        )
    finally:
        lock.release()


def _new_record(
    repo: Repo,
    *,
    name: str,
    command: Sequence[str],
    status: str,
    exit_code: int | None,
    started: float,
    ended: float,
    base: str,
    branch: str | None,
    author: str | None,
    request: RunRequest,
    results: dict[str, Any],
) -> dict[str, Any]:
    captured = environment.capture(load_config(lambda p: read_workspace_file(repo, p)).env)
    in_record, shared = environment.split(captured)
    return {
        "version": RECORD_VERSION,
        "name": name,
        "command": [redact_text(part) for part in command],
        "status": status,
        "exit_code": exit_code,
        "started": iso_time(started),
        "ended": iso_time(ended),
        "duration": round(ended - started, 3),
        "base": base,
        "branch": branch,
        "author": author or "{} <{}>".format(*FALLBACK_IDENTITY),
        "host": socket.gethostname(),
        **in_record,
        "gitexp": __version__,
        "overrides": list(request.overrides),
        "outs": list(request.outs),
        "tags": dict(request.tags),
        "message": request.message,
        "reproduces": request.reproduces,
        **results,
        SHARED_ENVIRONMENT: shared,  # moved into the run's tree by build_tree
    }


def save_workspace(repo: Repo, reason: str, warn: Warn) -> str:
    """Records the workspace as it is as a run with status 'saved', so that an operation that
    overwrites files (checkout --force, apply --force) never loses work. Returns its name."""
    base = repo.head()
    if base is None:
        raise StateError("this repository has no commit yet: make a first commit first")
    existing, _ = run_names(repo)
    name = time.strftime("saved-%Y%m%d-%H%M%S")
    if name.lower() in {n.lower() for n in existing}:
        name = generate_name(existing).replace("-", "-saved-", 1)
    now = time.time()
    request = RunRequest(command=(), name=name, message=reason)
    record = _new_record(
        repo,
        name=name,
        command=(),
        status="saved",
        exit_code=None,
        started=now,
        ended=now,
        base=base,
        branch=repo.text(["symbolic-ref", "-q", "HEAD"], check=False) or None,
        author=repo.author_ident(),
        request=request,
        results=_read_results(repo, [], lambda _msg: None),
    )
    # What is staged is kept too, as `git stash` keeps it: a second parent whose tree is the
    # index, so applying the saved run can bring back index and worktree both (row S9).
    index_commit = repo.commit_tree(
        repo.index_tree(), base, f"index of {name}\n", identity_env(repo.author_ident())
    )
    record["index"] = index_commit
    _write_run_commit(
        repo, name, record, LogCapture(), request, (), [base, index_commit],
        repo.author_ident(), warn,
    )  # fmt: skip
    return name


def _write_run_commit(
    repo: Repo,
    name: str,
    record: dict[str, Any],
    log: LogCapture,
    request: RunRequest,
    command: Sequence[str],
    parents: str | Sequence[str],
    author: str | None,
    warn: Warn,
) -> str:
    config = load_config(lambda p: read_workspace_file(repo, p))
    outs = list(dict.fromkeys([*request.outs, *config.outs]))
    declared = [*config.params_files, *config.metrics_files, *record.get("params", {})]
    tree = build_tree(
        repo, record, log, outs, declared, config.max_file_bytes, fault_point, warn
    ).tree
    message = _commit_message(
        name, request, command, record["status"], record["exit_code"], record["duration"]
    )
    commit = repo.commit_tree(tree, parents, message, identity_env(author))
    fault_point("commit-written")
    try:
        repo.create_ref(
            RUNS_PREFIX + name, commit, f"gitexp run {name}", lambda: fault_point("ref-prepared")
        )
    except RefExistsError:
        raise UsageError(f"run '{name}' already exists: choose another name with -n") from None
    fault_point("ref-committed")
    keep_refs_packed(repo, 1)
    return commit


def _finish(repo: Repo, journal: Journal, plan: dict[str, bytes], warn: Warn) -> None:
    """Puts back the params files the overrides edited (row P9: the run keeps what the
    command left; the user's file gets its own content back)."""
    if not plan:
        return
    for path, written in plan.items():
        if read_workspace_file(repo, path) != written:
            warn(f"the command changed {path}; the run keeps its version, the file is restored")
    pipeline = [p for p in journal.restore() if p not in plan]
    if pipeline:
        # A pipeline run with overrides: its lock and outputs go back with the params, so
        # the workspace stays consistent (`dvc status` clean); the run keeps its own.
        if any(p.endswith(("dvc.lock", ".dvc")) for p in pipeline):
            checkout_data(repo.root)
        warn(
            f"put back {', '.join(pipeline)} and the pipeline's data as they were before the "
            "run, to match the restored params (the run keeps its own: 'gitexp apply' takes it)"
        )
    fault_point("params-restored")


def _pipeline_files(repo: Repo) -> list[str]:
    """The files a DVC pipeline rewrites that git keeps: its lock and `cache: false`
    outputs (cached outputs come back from DVC's cache through the lock)."""
    data = read_workspace_file(repo, DVC_YAML)
    if data is None:
        return []
    try:
        pipeline = dvcyaml.parse(data, DVC_YAML, lambda p: read_workspace_file(repo, p))
    except GitexpError:
        return []
    files = [DVC_LOCK] if (repo.root / DVC_LOCK).is_file() else []
    return files + sorted(p for p in pipeline.uncached() if (repo.root / p).is_file())


def _digests(repo: Repo, paths: Sequence[str]) -> dict[str, str | None]:
    """What tells whether a file was written: its bytes and its modification time (a run
    that writes the same values again still wrote them)."""
    found = {}
    for path in paths:
        data = read_workspace_file(repo, path)
        if data is None:
            found[path] = None
            continue
        stamp = os.stat(repo.root / path).st_mtime_ns
        found[path] = f"{hashlib.sha256(data).hexdigest()}:{stamp}"
    return found


def _carried(
    repo: Repo, config: Config, command: Sequence[str], status: str, before: dict[str, str | None]
) -> list[str]:
    """Metrics files the command did not write: unchanged since it started. After a
    successful `dvc repro`, a pipeline's outputs that DVC found up to date still count:
    they are valid for the run's inputs."""
    after = _digests(repo, config.metrics_files)
    same = [p for p, digest in after.items() if digest is not None and digest == before.get(p)]
    if same and status == "success" and list(command[:2]) in (["dvc", "repro"], ["dvc", "exp"]):
        data = read_workspace_file(repo, DVC_YAML)
        try:
            pipeline = dvcyaml.parse(data or b"", DVC_YAML, lambda p: read_workspace_file(repo, p))
        except GitexpError:
            return same
        declared = {o.path for o in pipeline.outputs()} | set(pipeline.top_metrics)
        same = [p for p in same if not any(p == d or p.startswith(d + "/") for d in declared)]
    return same
