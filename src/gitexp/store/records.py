"""Run records as stored: listing runs (one for-each-ref, one batched read), their names,
their logs, and removing them. Reading only, except `remove_runs`."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gitexp.core import yamlio
from gitexp.core.names import RUNS_PREFIX, check_free, generate_name
from gitexp.errors import UsageError
from gitexp.store.git import BatchReader, Repo
from gitexp.store.journal import temp_path, write_atomic
from gitexp.store.schema import load_record
from gitexp.store.snapshot import ENVIRONMENT_PATH, LOG_PATH, RECORD_PATH, parse_record


@dataclass(frozen=True)
class RunInfo:
    """A run as listed: its name, commit and record (None if the record is unreadable)."""

    name: str
    rev: str
    record: dict[str, Any] | None
    problem: str | None = None  # why the record could not be used


def iso_time(timestamp: float) -> str:
    """UTC, so that runs from machines in other time zones sort by their strings."""
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds")


def run_names(repo: Repo) -> tuple[list[str], list[str]]:
    """Existing run names, and branch and tag names (which a new run must not shadow)."""
    runs, others = [], []
    for ref, _ in repo.list_refs(RUNS_PREFIX, "refs/heads/", "refs/tags/"):
        if ref.startswith(RUNS_PREFIX):
            runs.append(ref[len(RUNS_PREFIX) :])
        else:
            others.append(ref.split("/", 2)[2])
    return runs, others


def names_near(repo: Repo, name: str) -> tuple[list[str], list[str]]:
    """The run names that could clash with `name` (the same name in any case, runs under it
    as a folder, runs named like one of its folders) and the branches and tags named like
    it, from one for-each-ref that git answers without listing every run."""
    parts = name.split("/")
    folders = ["/".join(parts[:depth]) for depth in range(1, len(parts))]
    # git compares case-insensitively only by fnmatch: whole names, and `**` under a folder
    patterns = [f"{RUNS_PREFIX}{p}" for p in (name, f"{name}/**", *folders)]
    patterns += [f"refs/heads/{name}", f"refs/tags/{name}"]
    out = repo.text(["for-each-ref", "--ignore-case", "--format=%(refname)",
                     "--end-of-options", *patterns])  # fmt: skip
    runs, others = [], []
    for ref in out.splitlines():
        if ref.startswith(RUNS_PREFIX):
            runs.append(ref[len(RUNS_PREFIX) :])
        elif ref.split("/", 2)[2] == name:
            others.append(ref.split("/", 2)[2])
    return runs, others


def free_name(repo: Repo, name: str | None) -> str:
    """`name` when no run, branch or tag takes it (see names.check_free), else a new
    generated name; without listing every run (100,000 refs cost git a moment)."""
    if name is not None:
        check_free(name, *names_near(repo, name))
        return name
    while True:
        candidate = generate_name(())
        runs, others = names_near(repo, candidate)
        if not runs and not others:
            return candidate


def list_runs(repo: Repo, reader: BatchReader) -> list[RunInfo]:
    """Every run, newest first: one for-each-ref and one batched read of the records."""
    refs = repo.list_refs(RUNS_PREFIX)
    records = reader.read_many([f"{oid}:{RECORD_PATH}" for _, oid in refs])
    runs = []
    for (ref, oid), data in zip(refs, records, strict=True):
        record, problem = load_record(data) if data is not None else (None, "it has no record")
        runs.append(RunInfo(ref[len(RUNS_PREFIX) :], oid, record, problem))
    runs.sort(key=lambda r: (r.record or {}).get("started", ""), reverse=True)
    return runs


def remove_runs(repo: Repo, names: Sequence[str]) -> list[str]:
    """Deletes the refs of the named runs; all names are checked before any is deleted."""
    refs = dict(repo.list_refs(RUNS_PREFIX))
    targets = []
    for raw in names:
        # Any existing name can be removed, even one that no longer passes the name rules
        # (a run pulled by an older gitexp): the ref reaches git after --end-of-options.
        ref = RUNS_PREFIX + raw
        if ref not in refs:
            raise UsageError(f"no run named '{raw}': see 'gitexp show' for the runs there are")
        targets.append((raw, ref, refs[ref]))
    repo.delete_refs({ref: oid for _, ref, oid in targets}, "gitexp remove")
    return [name for name, _, _ in targets]


def read_run_log(repo: Repo, rev: str, reader: BatchReader) -> tuple[dict[str, Any] | None, bytes]:
    record, log = reader.read_many([f"{rev}:{RECORD_PATH}", f"{rev}:{LOG_PATH}"])
    return (parse_record(record) if record else None), (log or b"")


def read_environment(reader: BatchReader, rev: str, record: dict[str, Any]) -> dict[str, Any]:
    """Where a run ran: the shared `.gitexp/environment.json` of its tree, with the record's
    own fields (older records kept everything in the record)."""
    data = reader.read(f"{rev}:{ENVIRONMENT_PATH}")
    shared: dict[str, Any] = {}
    if data is not None:
        try:
            loaded = yamlio.load_json(data, ENVIRONMENT_PATH)
            shared = loaded if isinstance(loaded, dict) else {}
        except UsageError:
            shared = {}
    return {**shared, **{k: v for k, v in record.items() if v is not None}}


LOOSE_REFS_LIMIT = 1000


def keep_refs_packed(repo: Repo, created: int) -> None:
    """After `created` new run refs: packs the refs once there are many loose ones. Counting
    them is a directory walk, so it is done after big batches always and after single runs
    now and then (one run in a hundred)."""
    if created < 100 and random.random() > created / 100:
        return
    loose = 0
    for _dir, _dirs, files in os.walk(repo.common_dir / "refs" / "runs"):
        loose += len(files)
        if loose > LOOSE_REFS_LIMIT:
            repo.pack_refs()
            return


def _tombstones(repo: Repo) -> Path:
    return repo.common_dir / "gitexp" / "removed.json"


def removed_runs(repo: Repo) -> dict[str, str]:
    """Commits of runs removed here -> their names: `pull` does not bring them back."""
    try:
        data = json.loads(_tombstones(repo).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _save_removed(repo: Repo, known: dict[str, str]) -> None:
    path = _tombstones(repo)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(known, indent=1).encode(), None, temp_path(repo, "removed"))


def remember_removed(repo: Repo, runs: dict[str, str]) -> None:
    _save_removed(repo, {**removed_runs(repo), **{c: n for n, c in runs.items()}})


def forget_removed(repo: Repo, commits: Sequence[str]) -> None:
    """Runs brought back on purpose (`pull REMOTE NAME`) are no longer left out."""
    known = removed_runs(repo)
    if any(c in known for c in commits):
        _save_removed(repo, {c: n for c, n in known.items() if c not in commits})
