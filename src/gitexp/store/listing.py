"""Reading runs and revisions into the rows `show`, `diff`, the report, the Python API and
the UI compute with: one batch process per call, nothing printed."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from gitexp.core.compare import Entry, diff_sections
from gitexp.core.render import to_json
from gitexp.core.secrets import masked
from gitexp.dvc.data import DataChange, collect, diff_data, dir_listing
from gitexp.errors import UsageError
from gitexp.store.dvcexps import list_experiments
from gitexp.store.git import BatchReader, Repo
from gitexp.store.index import run_rows, summary_entry
from gitexp.store.notes import Meta, read_meta
from gitexp.store.records import list_runs
from gitexp.store.snapshot import (
    RECORD_PATH,
    State,
    Target,
    read_pointer_files,
    read_states,
    resolve_target,
)


def entry_from_record(
    name: str,
    rev: str,
    record: dict[str, Any] | None,
    problem: str | None = None,
    meta: Meta | None = None,
) -> Entry:
    """A run's row; a run whose record is unusable is listed by name with status unknown.
    `meta` is what was said of it after it ended (tags, a note)."""
    record = record or {}
    errors = dict(record.get("errors") or {})
    if problem:
        errors[RECORD_PATH] = problem
    tags = record.get("tags") or {}
    return Entry(
        name=name,
        rev=rev,
        base=record.get("base"),
        created=record.get("started"),
        status=record.get("status", "unknown" if not record else None),
        duration=record.get("duration"),
        params=_masked(record.get("params") or {}),
        metrics=record.get("metrics") or {},
        tags=meta.apply_to(tags) if meta else tags,
        errors=errors,
        carried=record.get("carried") or {},
        note=meta.note if meta else None,
        message=record.get("message"),
    )


def run_entries(repo: Repo, reader: BatchReader, limit: int | None = None) -> list[Entry]:
    """Every run as a row, newest first, with the tags and notes added since: the one way
    show, report, the Python API and the UI list runs (through the run index)."""
    rows, metas = _rows(repo, reader, limit)
    entries = [s if isinstance(s, Entry) else summary_entry(s) for _, s, _, _ in rows]
    return [with_meta(e, metas[e.rev]) if e.rev in metas else e for e in entries]


def run_json(
    repo: Repo, reader: BatchReader, limit: int | None = None
) -> tuple[list[str], list[str]]:
    """The `show --json` text of every run, newest first, as the index keeps it (a run with
    tags or notes added since is rendered again), and the read errors to warn about."""
    rows, metas = _rows(repo, reader, limit)
    texts, errors = [], []
    for rev, summary, text, problems in rows:
        if problems:
            errors += problems.split("\n")
        if rev in metas:
            found = summary if isinstance(summary, Entry) else summary_entry(summary)
            text = json_text(with_meta(found, metas[rev]))
        texts.append(text)
    return texts, errors


def _rows(
    repo: Repo, reader: BatchReader, limit: int | None
) -> tuple[list[tuple[str, Any, str, str]], dict[str, Meta]]:
    """(commit, summary or entry, JSON text, errors) rows and the notes of their commits."""
    rows: list[tuple[str, Any, str, str]] | None = run_rows(repo, reader, limit)  # type: ignore[assignment]
    if rows is None:  # no usable index: read the records
        runs = list_runs(repo, reader)[:limit]
        listed = [entry_from_record(r.name, r.rev, r.record, r.problem) for r in runs]
        rows = [(e.rev, e, json_text(e), "\n".join(f"{e.name}: {m}" for m in e.errors.values()))
                for e in listed]  # fmt: skip
    return rows, read_meta(repo, reader, [rev for rev, _, _, _ in rows])


def all_json(repo: Repo, limit: int | None = None) -> tuple[str, list[str]]:
    """`show --json` of every run and DVC experiment, from the index's text without parsing
    the runs again (the listing of 100,000 runs stays within seconds), and the read errors
    to warn about."""
    with repo.batch_reader() as reader:
        texts, errors = run_json(repo, reader, limit)
        if limit is None or len(texts) < limit:
            imported = set()  # experiments imported as runs are listed once, as runs
            if list_experiments(repo):
                imported = {e.message for e in run_entries(repo, reader)}
            experiments = dvc_experiment_entries(repo, reader, imported)
            texts += [json_text(e) for e in experiments][: None if limit is None else
                                                         limit - len(texts)]  # fmt: skip
    return ("[\n" + ",\n".join(texts) + "\n]" if texts else "[]"), errors


def with_meta(entry: Entry, meta: Meta) -> Entry:
    return dataclasses.replace(entry, tags=meta.apply_to(entry.tags), note=meta.note)


def entry_json(entry: Entry) -> dict[str, Any]:
    """A row as `show --json` prints it."""
    data: dict[str, Any] = {
        "name": entry.name,
        "rev": entry.rev,
        "base": entry.base,
        "status": entry.status,
        "created": entry.created,
        "duration": entry.duration,
        "params": entry.params,
        "metrics": entry.metrics,
        "tags": entry.tags,
    }
    for optional in ("note", "message", "carried"):
        if getattr(entry, optional):
            data[optional] = getattr(entry, optional)
    if entry.dvc_experiment:
        data["dvc_experiment"] = True
    if entry.errors:
        data["errors"] = entry.errors
    return data


def json_text(item: Entry) -> str:
    """An entry's JSON, indented as an item of `show --json`'s list."""
    return "  " + to_json(entry_json(item)).replace("\n", "\n  ")


def _masked(params: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {path: masked(flat) for path, flat in params.items()}


def entry_from_state(state: State) -> Entry:
    target = state.target
    notes = {f"{path} (not read)": note for path, note in state.notes.items()}
    return Entry(
        name=target.label,
        rev=target.rev or "workspace",
        base=None,
        created=None,
        status=None,
        duration=None,
        params=_masked(state.params),
        metrics=state.metrics,
        carried=state.carried,
        errors={**state.errors, **notes},
    )


def show_entries(
    repo: Repo, revs: Sequence[str], newest: int | None = None
) -> tuple[list[Entry], list[str]]:
    """The entries to list (only the `newest` runs when given), and the read errors to warn
    about (the listing goes on)."""
    with repo.batch_reader() as reader:
        if not revs:
            entries = run_entries(repo, reader, newest)
            imported = {e.message for e in entries}
            entries += dvc_experiment_entries(repo, reader, imported)
        else:
            targets = [resolve_target(repo, rev) for rev in revs]
            states = read_states(repo, targets, reader)
            metas = read_meta(repo, reader, [t.rev for t in targets if t.run and t.rev])
            entries = [
                entry_from_record(
                    s.target.run, s.target.rev or "", s.record, None, metas.get(s.target.rev or "")
                )  # fmt: skip
                if s.target.run and s.record
                else entry_from_state(s)
                for s in states
            ]
    errors = [f"{e.name}: {msg}" for e in entries for msg in e.errors.values()]
    return entries, errors


def dvc_experiment_entries(
    repo: Repo, reader: BatchReader, imported: set[str | None] | None = None
) -> list[Entry]:
    """DVC's experiments as rows, their params and metrics read from their commits; those
    imported as runs (`gitexp import-dvc`) are listed once, as runs."""
    imported = imported or set()
    experiments = [e for e in list_experiments(repo) if f"imported from {e.ref}" not in imported]
    targets = [Target(label=e.name, rev=e.rev) for e in experiments]
    states = read_states(repo, targets, reader) if targets else []
    return [
        dataclasses.replace(
            entry_from_state(state),
            base=e.baseline,
            created=e.created,
            status="success",
            dvc_experiment=True,
        )  # fmt: skip
        for e, state in zip(experiments, states, strict=True)
    ]


def diff_structure(
    repo: Repo, a: str, b: str, show_all: bool, warn: Callable[[str], None]
) -> tuple[list[Any], list[DataChange]]:
    """The param/metric changes and data changes between two runs or revisions."""
    targets = [resolve_target(repo, a), resolve_target(repo, b)]
    with repo.batch_reader() as reader:
        old, new = read_states(repo, targets, reader)
        pointers = [read_pointer_files(repo, t, reader) for t in targets]
    for state in (old, new):
        for path, message in state.errors.items():
            if path == RECORD_PATH:  # the files still compare; only the record is unusable
                warn(f"{state.target.label}: {message}")
                continue
            raise UsageError(f"{state.target.label}: {message}")
        for message in state.notes.values():
            warn(f"{state.target.label}: {message}")
    sides = [{"params": s.params, "metrics": s.metrics} for s in (old, new)]
    changes = diff_sections(sides[0], sides[1], show_all)
    data_changes = diff_data(
        collect(pointers[0]),
        collect(pointers[1]),
        lambda entry: dir_listing(repo.root, entry.obj),
        show_all,
    )
    return changes, data_changes
