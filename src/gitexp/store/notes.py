"""Tags and notes added after a run ended, kept git-natively in git notes
(`refs/notes/gitexp`): a run's commit never changes, and the notes travel with push and pull.

Each run commit has at most one note, a small JSON object: `{"tags": {KEY: VALUE or null},
"note": TEXT}`. A tag of null deletes a tag the run recorded when it ran. The notes tree is
rewritten with plumbing in one commit per change (never one process per run), and the ref
is moved with a compare-and-swap, so concurrent writers never lose each other's notes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gitexp.core import yamlio
from gitexp.errors import GitexpError, StateError
from gitexp.store.git import BatchReader, GitCommandError, Repo, iter_lines_z

NOTES_REF = "refs/notes/gitexp"
MAX_NOTE_BYTES = 100_000


@dataclass
class Meta:
    """What was said of a run after it ended."""

    tags: dict[str, str | None] = field(default_factory=dict)  # None: the tag was deleted
    note: str | None = None

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.tags:
            data["tags"] = self.tags
        if self.note:
            data["note"] = self.note
        return data

    def apply_to(self, tags: Mapping[str, str]) -> dict[str, str]:
        """The run's tags with these changes."""
        merged = {**tags, **{k: v for k, v in self.tags.items() if v is not None}}
        return {k: v for k, v in merged.items() if self.tags.get(k, "") is not None}


def _parse(data: bytes | None) -> Meta | None:
    if data is None or len(data) > MAX_NOTE_BYTES:
        return None
    try:
        doc = yamlio.load_json(data, "note")
    except GitexpError:
        return None
    if not isinstance(doc, dict):
        return None
    tags = doc.get("tags") if isinstance(doc.get("tags"), dict) else {}
    clean = {str(k): v for k, v in tags.items() if v is None or isinstance(v, str)}
    note = doc.get("note") if isinstance(doc.get("note"), str) else None
    return Meta(clean, note)


def notes_tree(repo: Repo, ref: str = NOTES_REF) -> dict[str, str]:
    """annotated object -> note blob, from one ls-tree of the notes commit (notes trees may
    fan out into `ab/cdef...` paths)."""
    proc = repo.git(["ls-tree", "-r", "-z", "--end-of-options", ref], check=False)
    found = {}
    for line in iter_lines_z(proc.stdout):
        info, _, path = line.partition("\t")
        found[path.replace("/", "")] = info.split()[2]
    return found


def read_meta(
    repo: Repo, reader: BatchReader, commits: Iterable[str], ref: str = NOTES_REF
) -> dict[str, Meta]:
    """commit -> Meta for the commits that have a note (one ls-tree, one batched read)."""
    tree = notes_tree(repo, ref)
    wanted = [c for c in dict.fromkeys(commits) if c in tree]
    blobs = reader.read_many([tree[c] for c in wanted])
    found = {}
    for commit, data in zip(wanted, blobs, strict=True):
        meta = _parse(data)
        if meta is not None:
            found[commit] = meta
    return found


def write_meta(
    repo: Repo, changes: Mapping[str, Meta | None], message: str, also_parent: str | None = None
) -> None:
    """Sets (or with None, removes) the notes of commits in one notes commit; `also_parent`
    (another copy's notes commit, merged in) makes the result a fast-forward of it."""
    for _ in range(5):  # another writer may move the ref between our read and our swap
        old = repo.resolve_commit(NOTES_REF)
        tree = _tree_with(repo, old, changes)
        parents = [p for p in (old, also_parent) if p]
        commit = repo.commit_tree(tree, parents, message + "\n", {})
        command = f"update {NOTES_REF} {commit} {old}" if old else f"create {NOTES_REF} {commit}"
        try:
            repo.update_refs([command], message)
            return
        except GitCommandError:
            continue
    raise StateError(f"could not update {NOTES_REF}: other processes kept changing it; try again")


def _tree_with(repo: Repo, base: str | None, changes: Mapping[str, Meta | None]) -> str:
    existing = notes_tree(repo) if base else {}
    blobs = repo.write_blob_data(
        {c: json.dumps(m.as_json(), sort_keys=True).encode() for c, m in changes.items() if m}
    )
    with repo.temp_index() as index:
        if base:
            repo.git(["read-tree", f"{base}^{{tree}}"], env=index.env, write=True)
        else:
            repo.git(["read-tree", "--empty"], env=index.env, write=True)
        lines = []
        for commit in changes:
            if commit in existing:  # wherever it was (fan-out or flat), remove it
                for path in _paths(repo, index.env, commit):
                    lines.append(f"0 {'0' * 40}\t{path}\n")
            if commit in blobs:
                lines.append(f"100644 {blobs[commit]}\t{commit}\n")
        if lines:
            repo.git(["update-index", "--index-info"], stdin="".join(lines).encode(),
                     env=index.env, write=True)  # fmt: skip
        return index.write_tree()


def _paths(repo: Repo, env: Mapping[str, str], commit: str) -> list[str]:
    candidates = [commit, f"{commit[:2]}/{commit[2:]}", f"{commit[:2]}/{commit[2:4]}/{commit[4:]}"]
    out = repo.git(["ls-files", "-z", "--", *candidates], env=env).stdout
    return list(iter_lines_z(out))


def merged(mine: Meta | None, theirs: Meta) -> Meta:
    """Notes of one run from two places: what is here wins, what is only there is added."""
    if mine is None:
        return theirs
    return Meta({**theirs.tags, **mine.tags}, mine.note if mine.note is not None else theirs.note)
