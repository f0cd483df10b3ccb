"""A summary index of runs, so that listing 100,000 runs stays fast.

The index is a cache derived from the refs and the run records, never the source of truth:
deleting it loses nothing. It lives in the git directory (`gitexp/runs.sqlite`, shared by the
repository's worktrees), one row per run ref: the commit the ref pointed at when the row was
made, the run's summary (what `show`, `search_runs`, `report` and the UI compute with), and
its `show --json` text. Each read compares the refs (one for-each-ref) with the rows and reads
the records of only the runs that are new or whose ref moved (one batched read). SQLite's
transactions make concurrent updates safe: a second process waits, then finds the work done.
An index that is missing, damaged, or written by another version of gitexp is rebuilt; one
that cannot be written (a read-only git directory) is simply not used.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from gitexp import __version__
from gitexp.core.compare import Entry
from gitexp.core.names import RUNS_PREFIX
from gitexp.store.git import BatchReader, Repo
from gitexp.store.schema import load_record

SCHEMA = 3
_FIELDS = ("name", "rev", "base", "created", "status", "duration", "params", "metrics", "tags",
           "errors", "carried", "message")  # fmt: skip


def index_path(repo: Repo) -> Path:
    return repo.common_dir / "gitexp" / "runs.sqlite"


def run_records(repo: Repo, reader: BatchReader) -> list[tuple[str, str, dict[str, Any] | None]]:
    """(name, commit, validated record or None) of every run, newest first, through the
    index (the Python API's search reads records without one git read per run); None
    stands for a run whose record is unusable."""
    rows = _query(repo, reader, "SELECT name, rev, record", None)
    if rows is None:
        from gitexp.store.records import list_runs

        return [(r.name, r.rev, r.record) for r in list_runs(repo, reader)]
    return [(name, rev, json.loads(text) if text else None) for name, rev, text in rows]


def _summary(entry: Entry) -> str:
    """An entry as compact JSON that keeps NaN and infinities (Python's JSON reads them back)."""
    return json.dumps({f: getattr(entry, f) for f in _FIELDS}, separators=(",", ":"))


def summary_entry(summary: str) -> Entry:
    return Entry(**json.loads(summary))


@contextlib.contextmanager
def _connect(repo: Repo) -> Iterator[sqlite3.Connection | None]:
    """The index, opened (created or rebuilt as needed), or None when it cannot be used."""
    path = index_path(repo)
    db = None
    for _ in range(2):  # a damaged or foreign index is removed and made again, once
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            if _usable(db):
                break
        except (sqlite3.Error, OSError):
            pass
        if db is not None:
            db.close()
            db = None
        with contextlib.suppress(OSError):
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
    try:
        yield db
    finally:
        if db is not None:
            db.close()


def _usable(db: sqlite3.Connection) -> bool:
    """Creates the tables if new; False when the file is from another version."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT)")
        db.execute(
            "CREATE TABLE IF NOT EXISTS runs(name TEXT PRIMARY KEY, rev TEXT NOT NULL, "
            "created TEXT, summary TEXT NOT NULL, json TEXT NOT NULL, errors TEXT NOT NULL, "
            "record TEXT NOT NULL)"
        )
        db.execute("CREATE INDEX IF NOT EXISTS runs_created ON runs(created)")
        found = dict(db.execute("SELECT key, value FROM meta"))
        wanted = {"schema": str(SCHEMA), "gitexp": __version__}
        if not found:
            db.executemany("INSERT INTO meta VALUES (?, ?)", list(wanted.items()))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return not found or all(found.get(k) == v for k, v in wanted.items())


def _refresh(repo: Repo, db: sqlite3.Connection, reader: BatchReader, refs: dict[str, str]) -> None:
    """Brings the rows in line with the refs: reads only new or moved runs."""
    known = dict(db.execute("SELECT name, rev FROM runs"))
    if known == refs:
        return
    db.execute("BEGIN IMMEDIATE")  # another process may be doing the same: redo under lock
    try:
        known = dict(db.execute("SELECT name, rev FROM runs"))
        gone = [(n,) for n, rev in known.items() if refs.get(n) != rev]
        db.executemany("DELETE FROM runs WHERE name = ?", gone)
        todo = [(n, rev) for n, rev in refs.items() if known.get(n) != rev]
        db.executemany("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)", _rows(reader, todo))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _rows(reader: BatchReader, runs: Sequence[tuple[str, str]]) -> list[tuple]:
    from gitexp.store.listing import entry_from_record, json_text
    from gitexp.store.snapshot import RECORD_PATH

    blobs = reader.read_many([f"{rev}:{RECORD_PATH}" for _, rev in runs])
    rows = []
    for (name, rev), data in zip(runs, blobs, strict=True):
        record, problem = load_record(data) if data is not None else (None, "it has no record")
        entry = entry_from_record(name, rev, record, problem)
        errors = "\n".join(f"{name}: {message}" for message in entry.errors.values())
        text = json.dumps(record, separators=(",", ":")) if record else ""
        rows.append(
            (name, rev, entry.created or "", _summary(entry), json_text(entry), errors, text)
        )
    return rows


def _refs_signature(repo: Repo) -> str | None:
    """What changes whenever a run ref does, read without running git: packed-refs and the
    loose refs under refs/runs/ (few: gitexp packs them). None when refs are stored another
    way (reftable), where every read asks git."""
    common = repo.common_dir
    if (common / "reftable").exists():
        return None
    parts = []
    try:
        info = os.stat(common / "packed-refs")
        parts.append(f"packed {info.st_ino} {info.st_size} {info.st_mtime_ns}")
    except FileNotFoundError:
        parts.append("packed -")
    for folder, _dirs, files in os.walk(common / "refs" / "runs"):
        for name in files:
            info = os.stat(os.path.join(folder, name))
            parts.append(f"{folder}/{name} {info.st_ino} {info.st_mtime_ns}")
    return "\n".join(sorted(parts))


def run_rows(
    repo: Repo, reader: BatchReader, limit: int | None = None
) -> list[tuple[str, str, str, str]] | None:
    """(commit, summary, show --json text, read errors) of every run, newest first, through
    the index; None when the index cannot be used (the caller reads the records itself).
    Summaries are decoded (summary_entry) only where needed: 100,000 cost seconds."""
    return _query(repo, reader, "SELECT rev, summary, json, errors", limit)


def _query(repo: Repo, reader: BatchReader, select: str, limit: int | None) -> list[tuple] | None:
    """The rows of `select` over the refreshed index, newest first; None when the index
    cannot be used."""
    if os.environ.get("GITEXP_NO_INDEX"):  # read the records themselves (a check, a debug)
        return None
    with _connect(repo) as db:
        if db is None:
            return None
        try:
            signature = _refs_signature(repo)
            seen = db.execute("SELECT value FROM meta WHERE key = 'refs'").fetchone()
            if signature is None or not seen or seen[0] != signature:
                refs = {ref[len(RUNS_PREFIX) :]: oid for ref, oid in repo.list_refs(RUNS_PREFIX)}
                _refresh(repo, db, reader, refs)
                if signature is not None:
                    db.execute("INSERT OR REPLACE INTO meta VALUES ('refs', ?)", (signature,))
            query = f"{select} FROM runs ORDER BY created DESC, name"
            if limit is not None:
                query += f" LIMIT {int(limit)}"
            return list(db.execute(query))
        except sqlite3.Error:
            return None
