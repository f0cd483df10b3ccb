"""Managing runs after they ended: rename, tag, note, and remove (here and on a remote).

A run's commit never changes: a rename moves its ref in one transaction, tags and notes go to
git notes (store/notes.py), and a removed run is remembered so that the next `pull` does not
bring it back.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence

from gitexp.core.compare import select
from gitexp.core.names import RUNS_PREFIX, check_free, validate_name
from gitexp.errors import RemoteError, UsageError
from gitexp.store.git import GitCommandError, Repo
from gitexp.store.listing import run_entries
from gitexp.store.notes import Meta, read_meta, write_meta
from gitexp.store.records import remember_removed, run_names
from gitexp.workflows.remote import SAFE_GIT, check_remote, remote_runs

Warn = Callable[[str], None]


def _runs(repo: Repo) -> dict[str, str]:
    return {ref[len(RUNS_PREFIX) :]: oid for ref, oid in repo.list_refs(RUNS_PREFIX)}


def _one(repo: Repo, name: str) -> str:
    commit = _runs(repo).get(name)
    if commit is None:
        raise UsageError(f"no run named '{name}': see 'gitexp show' for the runs there are")
    return commit


def rename(repo: Repo, old: str, new: str) -> None:
    """Moves refs/runs/OLD to refs/runs/NEW in one transaction (tags and notes follow: they
    belong to the commit)."""
    commit = _one(repo, old)
    new = validate_name(new)
    existing, others = run_names(repo)
    check_free(new, [n for n in existing if n != old], others, fix="choose another new name")
    repo.update_refs(
        [f"create {RUNS_PREFIX}{new} {commit}", f"delete {RUNS_PREFIX}{old} {commit}"],
        f"gitexp rename {old} {new}",
    )


def tag(repo: Repo, name: str, tags: dict[str, str], deleted: Sequence[str]) -> dict[str, str]:
    """Sets and deletes tags of a run that has ended; returns its tags now."""
    for key in [*tags, *deleted]:
        if not key or any(c.isspace() for c in key):
            raise UsageError(f"invalid tag name '{key}': use a name without spaces")
    commit = _one(repo, name)
    with repo.batch_reader() as reader:
        meta = read_meta(repo, reader, [commit]).get(commit) or Meta()
        (entry,) = [e for e in run_entries(repo, reader) if e.rev == commit and e.name == name]
    unknown = [k for k in deleted if k not in entry.tags]
    if unknown:
        raise UsageError(f"run '{name}' has no tag {', '.join(unknown)}")
    meta.tags.update(tags)
    meta.tags.update(dict.fromkeys(deleted))
    write_meta(repo, {commit: meta}, f"gitexp tag {name}")
    return meta.apply_to({k: v for k, v in entry.tags.items() if k not in meta.tags})


def note(repo: Repo, name: str, text: str | None) -> None:
    """Sets (or with None, removes) a run's note."""
    commit = _one(repo, name)
    with repo.batch_reader() as reader:
        meta = read_meta(repo, reader, [commit]).get(commit) or Meta()
    meta.note = text or None
    write_meta(repo, {commit: meta if meta.as_json() else None}, f"gitexp note {name}")


def chosen(repo: Repo, patterns: Sequence[str], filter_expr: str | None) -> dict[str, str]:
    """The runs `remove` means: names or globs (`'sweep/*'`), and/or a filter. Every name
    that is not a glob must exist; a glob or filter that matches nothing is an error."""
    runs = _runs(repo)
    picked: dict[str, str] = {}
    for pattern in patterns:
        if any(c in pattern for c in "*?["):
            hits = {n: c for n, c in runs.items() if fnmatch.fnmatchcase(n, pattern)}
            if not hits:
                raise UsageError(f"no run matches '{pattern}': see 'gitexp show'")
            picked.update(hits)
        elif pattern in runs:
            picked[pattern] = runs[pattern]
        else:
            raise UsageError(f"no run named '{pattern}': see 'gitexp show' for the runs there are")
    if filter_expr:
        with repo.batch_reader() as reader:
            entries = run_entries(repo, reader)
        matching = {e.name for e in select(entries, filter_expr=filter_expr)}
        if patterns:  # both: the named runs that also match the filter
            picked = {n: c for n, c in picked.items() if n in matching}
        else:
            picked = {n: runs[n] for n in matching if n in runs}
    if not picked:
        raise UsageError("no run matches: nothing was removed")
    return dict(sorted(picked.items()))


def remove(repo: Repo, runs: dict[str, str], remote: str | None, progress: Warn) -> None:
    """Deletes the runs here (and first on `remote`, in one atomic push that only deletes
    refs still at the commits removed here). Remembers them so `pull` leaves them out."""
    if remote is not None:
        remote = check_remote(repo, remote)
        there = remote_runs(repo, remote)
        gone = {n: c for n, c in runs.items() if there.get(n) == c}
        differ = sorted(n for n in runs if n in there and there[n] != runs[n])
        if differ:
            raise RemoteError(
                f"{', '.join(differ)} differ on {remote} from the runs here: nothing was "
                "removed (pull them first, or remove them there by name)"
            )
        if gone:
            progress(f"removing {len(gone)} run(s) from {remote}")
            leases = [f"--force-with-lease={RUNS_PREFIX}{n}:{c}" for n, c in gone.items()]
            specs = [f":{RUNS_PREFIX}{n}" for n in gone]
            try:
                repo.git([*SAFE_GIT, "push", "--atomic", "--quiet", *leases, "--", remote,
                          *specs], write=True)  # fmt: skip
            except GitCommandError as exc:
                detail = " ".join(exc.stderr.split())[:300]
                raise RemoteError(f"{remote} refused the removal: {detail}") from None
    repo.delete_refs({RUNS_PREFIX + n: c for n, c in runs.items()}, "gitexp remove")
    remember_removed(repo, runs)
