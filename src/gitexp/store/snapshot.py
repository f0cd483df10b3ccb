"""One interface over the things a user can name: a run, any git revision, or the workspace.

`resolve_target` turns a name into a Target; `read_states` reads the params, metrics and run
record of many targets with one `git cat-file --batch` process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitexp.core.config import RESERVED_DIR, load_config
from gitexp.core.metrics import load_metrics
from gitexp.core.names import RUNS_PREFIX
from gitexp.core.params import Flat, load_params
from gitexp.dvc.data import collect, entry_of, is_dvc_file, read_tracked
from gitexp.errors import GitexpError, UsageError
from gitexp.store.dvcexps import find_experiment
from gitexp.store.git import BatchReader, Repo
from gitexp.store.schema import load_record

WORKSPACE = "workspace"
RECORD_PATH = f"{RESERVED_DIR}/run.json"
LOG_PATH = f"{RESERVED_DIR}/run.log"
ENVIRONMENT_PATH = f"{RESERVED_DIR}/environment.json"  # what repeats across runs, shared
# The only files a run's tree may hold under .gitexp/ (anything else there is refused).
RESERVED_FILES = frozenset({RECORD_PATH, LOG_PATH, ENVIRONMENT_PATH})


@dataclass(frozen=True)
class Target:
    """A resolved name: `rev` is None for the workspace; `run` is set for run refs."""

    label: str
    rev: str | None
    run: str | None = None


@dataclass
class State:
    """What a target holds: params and metrics per file, read errors per file, the record."""

    target: Target
    params: dict[str, Flat] = field(default_factory=dict)
    metrics: dict[str, Flat] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # files that could not be read here
    record: dict[str, Any] | None = None
    carried: dict[str, Flat] = field(default_factory=dict)  # metrics a run did not write


def resolve_target(repo: Repo, spec: str) -> Target:
    """A run name wins over a git revision of the same name; `workspace` is the files on disk.

    Git's revision syntax works on run names too (`my-run~1`, `my-run^{tree}` is refused).
    """
    if spec.startswith("-"):
        raise UsageError(f"invalid run or revision '{spec}': it must not begin with '-'")
    if spec == WORKSPACE:
        return Target(label=WORKSPACE, rev=None)
    if not spec or "\n" in spec or "\0" in spec:
        raise UsageError(f"invalid run or revision {spec!r}")
    rev = repo.resolve_commit(RUNS_PREFIX + spec)
    if rev is not None:
        name = spec if repo.ref_exists(RUNS_PREFIX + spec) else None
        return Target(label=spec, rev=rev, run=name)
    rev = repo.resolve_commit(spec)
    if rev is None:
        experiment = find_experiment(repo, spec)
        if experiment is not None:  # a DVC experiment's name, as `dvc exp show` lists it
            return Target(label=spec, rev=experiment.rev)
        raise UsageError(
            f"unknown run or revision '{spec}': see 'gitexp show' for runs, 'git log' for commits"
        )
    return Target(label=spec, rev=rev)


def read_workspace_file(repo: Repo, path: str) -> bytes | None:
    """A file from disk, never following a symlink out of the repository (row M5)."""
    full = repo.root / path
    try:
        real = Path(os.path.realpath(full))
        if repo.root.resolve() not in real.parents or not real.is_file():
            return None
        return real.read_bytes()
    except OSError:
        return None


def read_states(repo: Repo, targets: Sequence[Target], reader: BatchReader) -> list[State]:
    """Params, metrics and records of the targets: three batched reads in all."""
    states = [State(target=t) for t in targets]

    def read_paths(paths_per_state: list[list[str]]) -> list[dict[str, bytes | None]]:
        specs = [
            f"{s.target.rev}:{p}"
            for s, paths in zip(states, paths_per_state, strict=True)
            if s.target.rev
            for p in paths
        ]
        blobs = iter(reader.read_many(specs))
        results = []
        for s, paths in zip(states, paths_per_state, strict=True):
            if s.target.rev:
                results.append({p: next(blobs) for p in paths})
            else:
                results.append({p: read_workspace_file(repo, p) for p in paths})
        return results

    from gitexp.core.config import CONFIG_FILE, DVC_YAML

    first = read_paths([[RECORD_PATH, CONFIG_FILE, DVC_YAML] for _ in states])
    files = []
    for state, found in zip(states, first, strict=True):
        if state.target.rev and found[RECORD_PATH] is not None:
            state.record, problem = load_record(found[RECORD_PATH])
            if problem:
                state.errors[RECORD_PATH] = problem
        try:
            config = load_config(found.get)
        except GitexpError as exc:
            state.errors[CONFIG_FILE] = str(exc)
            config = load_config(lambda _path: None)
        params = list(config.params_files)
        metrics = list(config.metrics_files)
        if state.record:  # files a run overrode or recorded count too
            params += [p for p in state.record.get("params", {}) if p not in params]
            recorded = [*state.record.get("metrics", {}), *(state.record.get("carried") or {})]
            metrics += [m for m in recorded if m not in metrics]
        files.append((params, metrics))

    contents = read_paths([p + m for p, m in files])
    # Files that DVC keeps in its cache are not in git: find them through their pointers.
    # Metrics inside a cached output directory (DVCLive's `eval/metrics.json` of an `eval`
    # output) are found through the directory's listing.
    for state, found in zip(states, contents, strict=True):
        missing = [p for p in found if found[p] is None]
        if not missing:
            continue
        tracked = collect(read_pointer_files(repo, state.target, reader))
        for path in missing:
            held = entry_of(tracked, path)
            if held is None:
                continue
            found[path] = read_tracked(repo.root, *held)
            if found[path] is None:
                state.notes[path] = (
                    f"{path} is kept by DVC and its content is not in the local cache "
                    "(fetch it with 'dvc pull' or 'gitexp pull')"
                )
    for state, (params, metrics), found in zip(states, files, contents, strict=True):
        parse_files(found, params, metrics, state)
        for path in (state.record or {}).get("carried") or {}:
            if path in state.metrics:  # left in the tree, but not the run's own
                state.carried[path] = state.metrics.pop(path)
    return states


def parse_files(
    found: Mapping[str, bytes | None], params: Sequence[str], metrics: Sequence[str], into: State
) -> None:
    """Parses the params and metrics files that exist into `into`; a file that cannot be
    read becomes an error beside the values, never an exception."""
    for kind, paths, parse in (("params", params, load_params), ("metrics", metrics, load_metrics)):
        for path in paths:
            data = found.get(path)
            if data is not None:
                try:
                    getattr(into, kind)[path] = parse(data, path)
                except GitexpError as exc:
                    into.errors[path] = str(exc)


def parse_record(data: bytes) -> dict[str, Any] | None:
    """A valid run record, or None (see schema.load_record for the reason)."""
    return load_record(data)[0]


def read_pointer_files(repo: Repo, target: Target, reader: BatchReader) -> dict[str, bytes]:
    """The DVC files (`*.dvc`, `dvc.lock`, `dvc.yaml`) of a revision or of the workspace."""
    if target.rev is None:
        listing = repo.git(["ls-files", "-z", "-c", "-o", "--exclude-standard"]).stdout
    else:
        listing = repo.git(["ls-tree", "-r", "-z", "--name-only", target.rev]).stdout
    paths = [p for p in listing.decode("utf-8", "surrogateescape").split("\0") if p]
    paths = sorted({p for p in paths if is_dvc_file(p)})
    if target.rev is None:
        found = {p: read_workspace_file(repo, p) for p in paths}
    else:
        found = dict(
            zip(paths, reader.read_many([f"{target.rev}:{p}" for p in paths]), strict=True)
        )
    return {p: data for p, data in found.items() if data is not None}


def list_files(repo: Repo, target: Target, prefixes: Sequence[str]) -> list[str]:
    """The files of a revision (or of the workspace, untracked ones included) under the
    given folders or paths."""
    if target.rev is None:
        args = ["ls-files", "-z", "-c", "-o", "--exclude-standard", "--", *prefixes]
    else:
        args = ["ls-tree", "-r", "-z", "--name-only", target.rev, "--", *prefixes]
    listing = repo.git(args).stdout
    return sorted({p for p in listing.decode("utf-8", "surrogateescape").split("\0") if p})


def read_files(
    repo: Repo, target: Target, paths: Sequence[str], reader: BatchReader
) -> dict[str, bytes | None]:
    """Files of a revision or of the workspace, in one batched read."""
    if target.rev is None:
        return {p: read_workspace_file(repo, p) for p in paths}
    return dict(zip(paths, reader.read_many([f"{target.rev}:{p}" for p in paths]), strict=True))
