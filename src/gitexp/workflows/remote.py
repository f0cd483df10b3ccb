"""Sharing runs: refs through a git remote, data through the DVC remote.

Push checks that every object the runs point at is in the local DVC cache or already on the
DVC remote, sends the data, and only then all refs in one atomic push that is never forced:
a remote never gets a run whose data is missing (RELIABILITY rule 9). Pull fetches into a
private namespace, validates what arrived (only commits, only valid names, only records that
match the schema: rows S5, S6) and creates the local run refs in one transaction; a local run
is never overwritten.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gitexp.core.gto import is_registry_tag
from gitexp.core.names import RUNS_PREFIX, NameIndex, validate_name
from gitexp.dvc.data import (
    DataEntry,
    Obj,
    dir_listing,
    missing_from_cache,
    transfer_objects,
    unavailable,
)
from gitexp.errors import GitexpError, RemoteError, UsageError
from gitexp.store.git import GitCommandError, Repo
from gitexp.store.notes import NOTES_REF, merged, notes_tree, read_meta, write_meta
from gitexp.store.records import forget_removed, keep_refs_packed, removed_runs
from gitexp.store.schema import load_record
from gitexp.store.snapshot import RECORD_PATH, Target
from gitexp.workflows.workspace import pointer_paths

Warn = Callable[[str], None]
FETCH_PREFIX = "refs/gitexp-fetch/"
_URL = re.compile(r"^(?:file|https?|ssh)://[^\s]+$")
# Never let a remote URL run a program (`ext::sh -c ...`) and check what is fetched.
SAFE_GIT = ["-c", "protocol.ext.allow=never", "-c", "transfer.fsckObjects=true"]


@dataclass(frozen=True)
class PushResult:
    runs: list[str]  # pushed now
    objects: int
    already: list[str] = field(default_factory=list)  # the remote had them as they are
    skipped: list[str] = field(default_factory=list)  # the remote has another run so named


@dataclass(frozen=True)
class PullResult:
    created: list[str]
    unchanged: list[str]
    conflicts: list[str]
    objects: int
    skipped: dict[str, str] = field(default_factory=dict)  # name -> why it was not taken
    without_data: dict[str, list[str]] = field(default_factory=dict)  # name -> paths
    removed_here: list[str] = field(default_factory=list)  # removed locally: left out
    data_problem: str | None = None  # why fetching data failed (else the DVC remote lacked it)


def check_remote(repo: Repo, remote: str) -> str:
    """A configured remote name, or a file/https/ssh URL; anything else is refused (RP7)."""
    if remote.startswith("-"):
        raise UsageError(f"invalid remote '{remote}': it must not begin with '-'")
    names = repo.text(["remote"]).split()
    if remote in names or _URL.match(remote):
        return remote
    raise UsageError(
        f"unknown remote '{remote}': use a configured remote ({', '.join(names) or 'none yet'}) "
        "or a file://, https:// or ssh:// URL"
    )


def remote_runs(repo: Repo, remote: str) -> dict[str, str]:
    """name -> commit of the runs a remote has (one ls-remote)."""
    try:
        out = repo.text([*SAFE_GIT, "ls-remote", "--refs", "--", remote, f"{RUNS_PREFIX}*"])
    except GitCommandError as exc:
        detail = " ".join(exc.stderr.split())[:300]
        raise RemoteError(f"could not reach {remote}: {detail}") from None
    found = {}
    for line in out.splitlines():
        oid, _, ref = line.partition("\t")
        found[ref[len(RUNS_PREFIX) :]] = oid
    return found


def _selected(repo: Repo, names: Sequence[str]) -> dict[str, str]:
    refs = dict(repo.list_refs(RUNS_PREFIX))
    if not names:
        return {ref[len(RUNS_PREFIX) :]: oid for ref, oid in refs.items()}
    chosen = {}
    for name in names:
        if name.startswith("-") or RUNS_PREFIX + name not in refs:
            raise UsageError(f"no run named '{name}': see 'gitexp show' for the runs there are")
        chosen[name] = refs[RUNS_PREFIX + name]
    return chosen


def _data_of(repo: Repo, runs: dict[str, str]) -> dict[str, dict[str, DataEntry]]:
    """name -> {tracked path: entry} for each run, from the records' data sections (one
    batched read for all runs); runs recorded before version 2 have their pointer files read
    (older records listed a pipeline's code deps as data too)."""
    with repo.batch_reader() as reader:
        blobs = reader.read_many([f"{oid}:{RECORD_PATH}" for oid in runs.values()])
    found = {}
    for (name, oid), blob in zip(runs.items(), blobs, strict=True):
        record = load_record(blob)[0] if blob is not None else None
        if record and record.get("version", 1) >= 2 and isinstance(record.get("data"), dict):
            entries = (DataEntry.from_json(p, d) for p, d in record["data"].items())
            found[name] = {e.path: e for e in entries if e is not None}
        else:
            found[name] = pointer_paths(repo, Target(label=name, rev=oid, run=name))
    return found


def push(
    repo: Repo,
    remote: str,
    names: Sequence[str],
    with_data: bool,
    progress: Warn,
    skip_existing: bool = False,
) -> PushResult:
    remote = check_remote(repo, remote)
    selected = _selected(repo, names)
    there = remote_runs(repo, remote)
    already = sorted(n for n, c in selected.items() if there.get(n) == c)
    clashes = sorted(n for n, c in selected.items() if n in there and there[n] != c)
    if clashes and not skip_existing:
        raise RemoteError(
            f"{remote} has other runs named {', '.join(clashes)}: nothing was pushed (rename "
            "yours with 'gitexp rename', or push the others with --skip-existing)"
        )
    runs = {n: c for n, c in selected.items() if n not in there}
    notes = _sync_notes(repo, remote, progress)
    objects = 0
    if with_data:  # runs already there too: their data may have been pushed with --no-data
        data = _data_of(repo, {**runs, **{n: selected[n] for n in already}})
        wanted = {e.obj for paths in data.values() for e in paths.values()}
        if wanted:
            lost = unavailable(repo.root, wanted)
            if lost:
                raise RemoteError(_lost_message(repo, data, lost))
            progress(f"pushing data of {len(data)} run(s) to the DVC remote")
            try:
                objects = transfer_objects(repo.root, wanted, push=True)
            except RemoteError as exc:
                raise RemoteError(f"{exc}; no run was pushed (or push with --no-data)") from None
    refspecs = [f"{RUNS_PREFIX}{n}:{RUNS_PREFIX}{n}" for n in sorted(runs)]
    commits = set(runs.values())  # the model registry's tags on these runs travel with them
    tags = [t.name for t in repo.list_tags() if t.commit in commits and is_registry_tag(t.name)]
    refspecs += [f"refs/tags/{t}:refs/tags/{t}" for t in sorted(tags)]
    if notes:  # tags and notes travel with the runs, in the same atomic push
        refspecs.append(f"{NOTES_REF}:{NOTES_REF}")
    if runs:
        progress(f"pushing {len(runs)} run(s) to {remote}")
    if refspecs:
        _push_refs(repo, remote, refspecs)
    return PushResult(sorted(runs), objects, already, clashes)


def _push_refs(repo: Repo, remote: str, refspecs: list[str]) -> None:
    """One atomic push, never forced: all the refs land or none."""
    try:
        repo.git([*SAFE_GIT, "push", "--atomic", "--quiet", "--", remote, *refspecs], write=True)
    except GitCommandError as exc:
        detail = " ".join(exc.stderr.split())[:300]
        raise RemoteError(f"{remote} refused the push: {detail}") from None


def _is_ancestor(repo: Repo, older: str, newer: str) -> bool:
    proc = repo.git(["merge-base", "--is-ancestor", older, newer], check=False)
    return proc.returncode == 0


def _sync_notes(repo: Repo, remote: str, progress: Warn) -> bool:
    """Merges the remote's tags and notes into ours (what is here wins), so ours can then be
    pushed as a fast-forward. Returns whether there are notes to push."""
    scratch = f"{FETCH_PREFIX}notes-{hashlib.sha1(remote.encode()).hexdigest()[:12]}"
    proc = repo.git([*SAFE_GIT, "fetch", "--quiet", "--no-tags", "--", remote,
                     f"+{NOTES_REF}:{scratch}"], write=True, check=False)  # fmt: skip
    theirs = repo.resolve_commit(scratch) if proc.returncode == 0 else None
    try:
        ours = repo.resolve_commit(NOTES_REF)
        behind = ours is None or not _is_ancestor(repo, theirs, ours) if theirs else False
        if theirs is not None and behind:
            with repo.batch_reader() as reader:
                remote_meta = read_meta(repo, reader, notes_tree(repo, scratch), scratch)
                mine = read_meta(repo, reader, remote_meta)
            changes = {c: merged(mine.get(c), m) for c, m in remote_meta.items()}
            changes = {c: m for c, m in changes.items() if m != mine.get(c)}
            write_meta(repo, changes, f"gitexp: notes from {remote}", also_parent=theirs)
            progress(f"merged tags and notes of {len(changes)} run(s) from {remote}")
    finally:
        if theirs is not None:
            repo.delete_refs({scratch: theirs})
    return repo.resolve_commit(NOTES_REF) is not None


def _lost_message(repo: Repo, data: dict[str, dict[str, DataEntry]], lost: set[Obj]) -> str:
    """One line naming each run and path whose data exists nowhere."""
    parts = []
    for name, paths in sorted(data.items()):
        gone = sorted(p for p, e in paths.items() if e.obj in lost or _files_lost(repo, e, lost))
        if gone:
            parts.append(f"'{name}' ({', '.join(gone)})")
    return (
        f"nothing was pushed: the data of run {', '.join(parts)} is in neither the local DVC "
        "cache nor the DVC remote; fetch it with 'gitexp pull', or push the other runs"
    )


def _files_lost(repo: Repo, entry: DataEntry, lost: set[Obj]) -> bool:
    """A directory output one of whose files is lost."""
    if not entry.hash.endswith(".dir"):
        return False
    listing = dir_listing(repo.root, entry.obj) or {}
    return any(Obj(h, entry.legacy) in lost for h in listing.values())


def pull(
    repo: Repo, remote: str, names: Sequence[str], with_data: bool, progress: Warn
) -> PullResult:
    remote = check_remote(repo, remote)
    progress(f"fetching runs from {remote}")
    fetched = _fetch(repo, remote, names)
    gone = removed_runs(repo)
    removed_here = []
    if not names:  # a run removed here stays removed; naming it brings it back
        for name, (oid, _) in list(fetched.items()):
            if oid in gone:
                removed_here.append(name)
                fetched.pop(name)
    taken, unchanged, conflicts, skipped = _sort_fetched(repo, fetched)
    refs = {RUNS_PREFIX + n: oid for n, oid in taken.items()}
    repo.create_refs(refs, f"gitexp pull {remote}")
    forget_removed(repo, list(taken.values()))
    keep_refs_packed(repo, len(refs))
    _sync_notes(repo, remote, progress)
    _pull_registry_tags(repo, remote, progress)
    objects, without_data, problem = 0, {}, None
    if with_data:  # new runs, and named runs already here whose data may be missing
        wanted_data = {**(_selected(repo, names) if names else {}), **taken}
        objects, without_data, problem = _pull_data(repo, wanted_data, progress)
    return PullResult(sorted(taken), unchanged, conflicts, objects, skipped, without_data,
                      sorted(removed_here), problem)  # fmt: skip


def _fetch(repo: Repo, remote: str, names: Sequence[str]) -> dict[str, tuple[str, str]]:
    """name -> (commit, object type) of the remote's runs, their objects fetched. No ref is
    written for them (1,000 scratch refs cost git seconds of lock files and fsyncs): the
    remote lists its refs, one fetch brings the objects, one batch check types them."""
    listed = remote_runs(repo, remote)
    if names:
        unknown = [n for n in names if n not in listed]
        if unknown:
            raise RemoteError(f"{remote} has no run named {', '.join(unknown)}")
        listed = {n: listed[n] for n in names}
    if not listed:
        return {}
    refspecs = "".join(f"{RUNS_PREFIX}{n}\n" for n in listed).encode()
    try:
        repo.git([*SAFE_GIT, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--stdin",
                  "--", remote], stdin=refspecs, write=True)  # fmt: skip
    except GitCommandError as exc:
        detail = " ".join(exc.stderr.split())[:300]
        raise RemoteError(f"could not fetch runs from {remote}: {detail}") from None
    with repo.batch_reader() as reader:
        kinds = reader.object_types(list(listed.values()))
    # a run that moved on the remote between listing and fetching is left for the next pull
    return {n: (oid, kinds[oid]) for n, oid in listed.items() if kinds.get(oid)}


def _pull_registry_tags(repo: Repo, remote: str, progress: Warn) -> None:
    """The model registry's tags (GTO's grammar) that are new here, created in one
    transaction after their objects are fetched and checked; a local tag is never
    overwritten. No scratch ref is written, as for runs."""
    try:
        out = repo.text([*SAFE_GIT, "ls-remote", "--refs", "--", remote, "refs/tags/*"])
    except GitCommandError as exc:
        progress(f"model registry tags not fetched: {' '.join(exc.stderr.split())[:200]}")
        return
    listed = {}
    for line in out.splitlines():
        oid, _, ref = line.partition("\t")
        if is_registry_tag(ref.removeprefix("refs/tags/")):
            listed[ref] = oid
    local = dict(repo.list_refs("refs/tags/"))
    new = {ref: oid for ref, oid in listed.items() if ref not in local}
    differ = sorted(ref[len("refs/tags/") :] for ref, oid in listed.items()
                    if ref in local and local[ref] != oid)  # fmt: skip
    if new:
        try:
            repo.git([*SAFE_GIT, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
                      "--stdin", "--", remote], stdin="".join(f"{r}\n" for r in new).encode(),
                     write=True)  # fmt: skip
        except GitCommandError as exc:
            progress(f"model registry tags not fetched: {' '.join(exc.stderr.split())[:200]}")
            return
        with repo.batch_reader() as reader:
            kinds = reader.object_types(list(new.values()))
        repo.create_refs({r: o for r, o in new.items() if kinds.get(o) == "tag"},
                         f"gitexp pull {remote}")  # fmt: skip
    if differ:
        progress(f"kept the local model registry tags that differ from {remote}'s: "
                 f"{', '.join(differ[:5])}")  # fmt: skip


def _sort_fetched(
    repo: Repo, fetched: dict[str, tuple[str, str]]
) -> tuple[dict[str, str], list[str], list[str], dict[str, str]]:
    """(runs to create, unchanged, conflicting, skipped with the reason)."""
    local = dict(repo.list_refs(RUNS_PREFIX))
    names_taken = NameIndex(ref[len(RUNS_PREFIX) :] for ref in local)
    candidates: dict[str, str] = {}
    unchanged, conflicts, skipped = [], [], {}
    for name, (oid, kind) in sorted(fetched.items()):
        mine = local.get(RUNS_PREFIX + name)
        if mine == oid:
            unchanged.append(name)
            continue
        if mine is not None:
            conflicts.append(name)
            continue
        if kind != "commit":
            skipped[name] = f"it points at a {kind}, not a commit"
            continue
        try:
            names_taken.check(validate_name(name))
        except UsageError as exc:
            skipped[name] = str(exc)
            continue
        names_taken.add(name)
        candidates[name] = oid
    with repo.batch_reader() as reader:
        records = reader.read_many([f"{oid}:{RECORD_PATH}" for oid in candidates.values()])
    taken = {}
    for (name, oid), data in zip(candidates.items(), records, strict=True):
        problem = "it has no run record" if data is None else load_record(data)[1]
        if problem:
            skipped[name] = problem
        else:
            taken[name] = oid
    return taken, unchanged, conflicts, skipped


def _pull_data(
    repo: Repo, runs: dict[str, str], progress: Warn
) -> tuple[int, dict[str, list[str]], str | None]:
    """Fetches what the runs' pointers name and the local cache lacks; returns how many
    objects came, per run the paths whose data could not be had, and why the fetch failed
    (None when it ran: then what is missing is missing from the DVC remote)."""
    data = _data_of(repo, runs)
    entries = {e.path + "\0" + e.hash: e for paths in data.values() for e in paths.values()}
    objects, problem = 0, None
    if entries:
        needed = {e.obj for e in entries.values() if missing_from_cache(repo.root, {e.path: e})}
        if needed:
            progress(f"fetching data of {len(runs)} run(s) from the DVC remote")
            try:
                objects = transfer_objects(repo.root, needed, push=False)
            except GitexpError as exc:
                problem = str(exc)
    without = {}
    for name, paths in data.items():
        gone = missing_from_cache(repo.root, paths)
        if gone:
            without[name] = gone
    return objects, without, problem
