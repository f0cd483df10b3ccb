"""The runs table: every run (and, on request, branches, tags and runs in progress) kept in
memory, read again only when refs under refs/runs/ (or the notes of runs) change, and queried
server-side (filter, sort, columns, groups, one page at a time), so the page never holds more
than it shows.

Runs are listed with `run_entries` (through the run index, tags and notes included) and
filtered and sorted with `select`, exactly as `show` does.
"""

from __future__ import annotations

import fnmatch
import math
import statistics
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitexp.core.compare import Column, Entry, KeyIndex, carried_of, columns_of, select, value_of
from gitexp.core.metrics import is_number, ordered
from gitexp.core.names import RUNS_PREFIX
from gitexp.core.render import format_value, json_safe
from gitexp.core.secrets import masked
from gitexp.errors import GitexpError
from gitexp.store.git import Repo
from gitexp.store.listing import entry_from_state, run_entries
from gitexp.store.live import LiveRun, list_live
from gitexp.store.notes import NOTES_REF
from gitexp.store.records import iso_time
from gitexp.store.snapshot import WORKSPACE, Target, read_states
from gitexp.ui.histories import HistoryCache, histories_on_disk

HISTORY_STATS = ("min", "max")
MAX_COLUMNS = 300
MAX_PAGE = 1000


@dataclass(frozen=True)
class Row:
    entry: Entry
    kind: str  # 'run', 'live' (in progress), 'branch' or 'tag'
    experiment: str  # the name's prefix before its last '/'

    def as_json(self) -> dict[str, Any]:
        e = self.entry
        return {
            "name": e.name,
            "kind": self.kind,
            "rev": e.rev,
            "base": e.base,
            "status": e.status,
            "created": e.created,
            "duration": e.duration,
            "experiment": self.experiment,
            "tags": e.tags,
            "note": e.note,
            "message": e.message,
            "errors": e.errors or None,
        }


@dataclass(frozen=True)
class ColumnSpec:
    """A column of the table: a param or metric (`column`), or a history summary."""

    id: str  # what `sort` names: 'params.yaml:train.lr', 'history:loss:min'
    label: str
    kind: str  # 'params', 'metrics' or 'history'
    column: Column | None = None
    metric: str | None = None
    stat: str | None = None

    def names(self) -> list[str]:
        """What a column glob is matched against."""
        if self.column is None:
            return [self.label, self.id]
        return [self.column.key, self.label, f"{self.column.path}:{self.column.key}"]

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "label": self.label, "kind": self.kind}
        if self.column:
            data["path"] = self.column.path
            data["key"] = self.column.key
        if self.metric:
            data["metric"] = self.metric
            data["stat"] = self.stat
        return data


@dataclass(frozen=True)
class Query:
    filter: str = ""
    sort: str = ""
    desc: bool = False
    columns: str = ""  # glob patterns over column names; '!pattern' hides
    only_changed: bool = True
    group: str = ""  # '', 'experiment', or any key of the filter language
    collapsed: frozenset[str] = frozenset()
    refs: bool = False  # branches and tags as rows
    history: bool = True  # min and max of each history metric as columns


def experiment_of(name: str) -> str:
    return name.rsplit("/", 1)[0] if "/" in name else ""


def _varies(values: Iterable[Any]) -> bool:
    """Whether any value differs from the first (stops at the first difference)."""
    first: Any = _varies
    for value in values:
        shown = repr(value)
        if first is _varies:
            first = shown
        elif shown != first:
            return True
    return False


def _pattern_match(patterns: Sequence[str], names: Sequence[str]) -> bool:
    """Globs over a column's names; '!glob' hides; with only hiding globs, the rest show."""
    shown = [p for p in patterns if not p.startswith("!")]
    hidden = [p[1:] for p in patterns if p.startswith("!")]
    if any(fnmatch.fnmatchcase(n, p) for p in hidden for n in names):
        return False
    return not shown or any(fnmatch.fnmatchcase(n, p) for p in shown for n in names)


class RunTable:
    """The runs of one repository and their queries; safe to use from many threads."""

    def __init__(self, repo: Repo, histories: HistoryCache) -> None:
        self.repo = repo
        self.histories = histories
        self.version = 0
        self._lock = threading.RLock()
        self._refs: list[tuple[str, str]] | None = None
        self._runs: list[Row] = []
        self._names: set[str] = set()
        self._live: list[Row] = []
        self._live_runs: list[LiveRun] = []
        self._live_key: Any = None
        self._other_refs: tuple[list[tuple[str, str]], list[Row]] | None = None
        self._cache: OrderedDict[Any, Any] = OrderedDict()
        self._refresh = threading.Lock()  # one reader of refs and records at a time
        self._last_poll = 0.0
        self._interval = 1.0
        self._filling = False
        self.loaded = threading.Event()
        self._served = threading.Event()  # a page went out

    # --- reading ------------------------------------------------------------------------------

    def poll(self, force: bool = False) -> bool:
        """Reads runs again if refs changed, and runs in progress; at most about once a
        second (slower when listing refs is slow). Returns whether anything changed.

        The reading happens outside the table's lock: pages are served from the previous
        state until the new one is complete, so a run landing never stalls the page."""
        first = not self.loaded.is_set()
        if not self._refresh.acquire(blocking=force or first):
            return False  # another thread is reading; its result will show
        try:
            now = time.monotonic()
            if not (force or first) and now - self._last_poll < self._interval:
                return False
            self._last_poll = now
            started = time.perf_counter()
            refs = self.repo.list_refs(RUNS_PREFIX, NOTES_REF)  # tags and notes: git notes
            self._interval = max(1.0, 5 * (time.perf_counter() - started))
            runs = self._read_runs() if refs != self._refs else None
            names = {r.entry.name for r in runs} if runs is not None else self._names
            live = self._read_live(names)
            if runs is not None or live is not None:
                with self._lock:
                    if runs is not None:
                        # a run whose ref exists is shown as recorded, even for the moment
                        # before its process removes its live entry
                        self._runs, self._names = runs, names
                    if live is not None:
                        self._live_runs, self._live = live
                    self.version += 1
                    self._cache.clear()
            self._refs = refs
            self.loaded.set()
        finally:
            self._refresh.release()
        if runs is not None or live is not None:
            self._fill_history_stats()
        return runs is not None or live is not None

    def _read_runs(self) -> list[Row]:
        with self.repo.batch_reader() as reader:
            entries = run_entries(self.repo, reader)
        return [Row(entry=e, kind="run", experiment=experiment_of(e.name)) for e in entries]

    def _read_live(self, recorded: set[str]) -> tuple[list[LiveRun], list[Row]] | None:
        """Runs in progress, with the params and metrics their workspace holds now; None
        when nothing changed since the last look."""
        live = [r for r in list_live(self.repo) if r.name not in recorded]
        key = [(run.id, _stamps(live_metric_files(run))) for run in live]
        if key == self._live_key:
            return None
        self._live_key = key
        return live, [self._live_row(run) for run in live]

    def _live_row(self, run: LiveRun) -> Row:
        state = live_state(self.repo, run)
        name = live_name(run)
        entry = Entry(
            name=name,
            rev="",
            base=None,
            created=iso_time(run.started),
            status="running",
            duration=round(time.time() - run.started, 3),
            params=state[0],
            metrics=state[1],
        )
        return Row(entry=entry, kind="live", experiment=experiment_of(name))

    def live_runs(self) -> list[LiveRun]:
        with self._lock:
            return list(self._live_runs)

    def live_run(self, name: str) -> LiveRun | None:
        """The run in progress shown under this name (`pid-N` for one not named yet)."""
        return next((r for r in self.live_runs() if live_name(r) == name), None)

    def rows(self, refs: bool = False) -> list[Row]:
        """Runs in progress first, then runs newest first, then branches and tags."""
        if not self.loaded.is_set():
            self.poll()
        with self._lock:
            rows = self._live + self._runs
        return rows + (self._ref_rows() if refs else [])

    def find(self, name: str) -> Row | None:
        for row in self.rows():
            if row.entry.name == name:
                return row
        return None

    def _ref_rows(self) -> list[Row]:
        """Branches and tags as rows, read again when they move."""
        refs = self.repo.list_refs("refs/heads/", "refs/tags/")
        with self._lock:
            if self._other_refs and self._other_refs[0] == refs:
                return self._other_refs[1]
        targets = [Target(label=ref.split("/", 2)[2], rev=oid) for ref, oid in refs]
        with self.repo.batch_reader() as reader:
            states = read_states(self.repo, targets, reader)
        rows = [
            Row(
                entry=entry_from_state(state),
                kind="tag" if ref.startswith("refs/tags/") else "branch",
                experiment="tags" if ref.startswith("refs/tags/") else "branches",
            )
            for (ref, _), state in zip(refs, states, strict=True)
        ]
        with self._lock:
            self._other_refs = (refs, rows)
        return rows

    def _fill_history_stats(self) -> None:
        """Summaries of every run's histories, read in the background so that min and max
        columns fill in without delaying a page; the table refreshes when they are done."""
        with self._lock:
            if self._filling:
                return
            self._filling = True

        def fill() -> None:
            # the first page goes out first: the summaries are not what it waits for
            self._served.wait(timeout=2.0)
            try:
                while True:  # again if runs landed meanwhile
                    revs = [r.entry.rev for r in self.rows() if r.kind == "run"]
                    known = self.histories.known_stats(revs)
                    missing = [r for r in revs if r not in known]
                    if not missing:
                        return
                    with self.repo.batch_reader() as reader:
                        for start in range(0, len(missing), 500):
                            self.histories.stats(reader, missing[start : start + 500])
                            # the first chunk shows the columns; the last completes them
                            if start == 0 or start + 500 >= len(missing):
                                with self._lock:
                                    self.version += 1
                                    self._cache.clear()
            finally:
                with self._lock:
                    self._filling = False

        threading.Thread(target=fill, name="gitexp-ui-histories", daemon=True).start()

    # --- querying -----------------------------------------------------------------------------

    def _cached(self, key: Any, compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        value = compute()
        with self._lock:
            self._cache[key] = value
            while len(self._cache) > 32:
                self._cache.popitem(last=False)
        return value

    def matched(self, query: Query) -> list[Row]:
        """The rows the filter keeps, in the sort's order (UsageError for a bad filter)."""
        # branches and tags are looked at again on each query: they move without runs landing
        refs = id(self._ref_rows()) if query.refs else None
        key = ("matched", self.version, refs, query.filter, query.sort, query.desc)
        return self._cached(key, lambda: self._match(query))  # type: ignore[no-any-return]

    def _match(self, query: Query) -> list[Row]:
        rows = self.rows(query.refs)
        by_entry = {id(r.entry): r for r in rows}
        history_sort = query.sort.startswith("history:")
        chosen = select(
            [r.entry for r in rows],
            filter_expr=query.filter or None,
            sort_by=None if history_sort or not query.sort else query.sort,
            descending=query.desc,
        )
        result = [by_entry[id(e)] for e in chosen]
        if history_sort:
            _, metric, stat = (query.sort.split(":", 2) + ["", ""])[:3]
            known = self.histories.known_stats(r.entry.rev for r in result)
            result = ordered(
                result, lambda r: known.get(r.entry.rev, {}).get(metric, {}).get(stat), query.desc
            )
        return result

    def columns(self, rows: Sequence[Row], query: Query) -> list[ColumnSpec]:
        key = ("columns", self.version, query.filter, query.refs, query.columns,
               query.only_changed, query.history)  # fmt: skip
        return self._cached(key, lambda: self._columns(rows, query))  # type: ignore[no-any-return]

    def _columns(self, rows: Sequence[Row], query: Query) -> list[ColumnSpec]:
        entries = [r.entry for r in rows]
        vary = query.only_changed and len(rows) > 1
        specs = []
        columns = columns_of(entries)
        for col in columns:
            if vary and not _varies(value_of(e, col) for e in entries):
                continue
            specs.append(ColumnSpec(f"{col.path}:{col.key}", col.label, col.kind, column=col))
        if query.history:
            known = self.histories.known_stats(r.entry.rev for r in rows if r.kind == "run")
            metrics = list(dict.fromkeys(m for stats in known.values() for m in stats))
            summaries = {c.key for c in columns if c.kind == "metrics"}
            for metric in metrics:
                # the last value is the summary metric's column when the run wrote one
                stats = HISTORY_STATS if metric in summaries else ("last", *HISTORY_STATS)
                for stat in stats:
                    values = (s.get(metric, {}).get(stat) for s in known.values())
                    if vary and len(known) > 1 and not _varies(values):
                        continue
                    specs.append(ColumnSpec(f"history:{metric}:{stat}", f"{metric} {stat}",
                                            "history", metric=metric, stat=stat))  # fmt: skip
        patterns = query.columns.split()
        if patterns:  # a glob matches what show --columns matches: key, label, file:key
            specs = [s for s in specs if _pattern_match(patterns, s.names())]
        return specs[:MAX_COLUMNS]

    def values(self, rows: Sequence[Row], columns: Sequence[ColumnSpec]) -> list[list[Any]]:
        """Each row's value in each column; history summaries are read for these rows now
        if the background pass has not reached them yet."""
        revs = [r.entry.rev for r in rows if r.kind == "run"]
        stats = self.histories.known_stats(revs)
        if any(c.kind == "history" for c in columns) and len(stats) < len(revs):
            with self.repo.batch_reader() as reader:
                stats = self.histories.stats(reader, revs)
        out = []
        for row in rows:
            cells = []
            for col in columns:
                if col.column is not None:
                    value = value_of(row.entry, col.column)
                    carried = carried_of(row.entry, col.column) if value is None else None
                    # a metric the run left as it found it: shown apart, not as its own
                    cells.append(value if carried is None else {"carried": carried})
                else:
                    found = stats.get(row.entry.rev, {}).get(col.metric or "", {})
                    cells.append(found.get(col.stat or ""))
            out.append(cells)
        return out

    def _group_key(self, query: Query, rows: Sequence[Row]) -> Callable[[Row], str]:
        if query.group == "experiment":
            return lambda r: r.experiment
        if query.group in ("kind", "status"):
            return lambda r: str(getattr(r.entry, query.group, None) or r.kind)
        index = KeyIndex(columns_of([r.entry for r in rows]))
        index.resolve(query.group)  # an unknown key is the user's error, said once
        return lambda r: format_value(index.lookup(r.entry, query.group))

    def items(self, query: Query) -> tuple[list[Row], list[dict[str, Any] | Row]]:
        """The matched rows, and what the table lists: rows, or group headings each followed
        by its rows (unless collapsed)."""
        rows = self.matched(query)
        if not query.group:
            return rows, list(rows)
        key = ("groups", self.version, query)

        def build() -> list[dict[str, Any] | Row]:
            group_of = self._group_key(query, rows)
            groups: dict[str, list[Row]] = {}
            for row in rows:
                groups.setdefault(group_of(row), []).append(row)
            columns = self.columns(rows, query)
            items: list[dict[str, Any] | Row] = []
            for name in sorted(groups, key=lambda g: (g == "", g)):
                members = groups[name]
                items.append(
                    {
                        "type": "group",
                        "group": name,
                        "count": len(members),
                        "collapsed": name in query.collapsed,
                        "summary": self._summary(members, columns),
                    }
                )
                if name not in query.collapsed:
                    items.extend(members)
            return items

        return rows, self._cached(key, build)

    def _summary(self, rows: Sequence[Row], columns: Sequence[ColumnSpec]) -> list[Any]:
        """Mean and spread (sample standard deviation) of each numeric column of a group."""
        values = self.values(rows, columns) if len(rows) <= 5000 else None
        summary: list[Any] = []
        for i, col in enumerate(columns):
            if values is None or col.kind == "params":
                summary.append(None)
                continue
            numbers = [
                v[i]
                for v in values
                if is_number(v[i]) and math.isfinite(v[i])  # type: ignore[arg-type]
            ]
            if not numbers:
                summary.append(None)
                continue
            spread = statistics.stdev(numbers) if len(numbers) > 1 else 0.0
            summary.append({"mean": statistics.fmean(numbers), "std": spread, "n": len(numbers)})
        return summary

    def page(self, query: Query, offset: int, limit: int) -> dict[str, Any]:
        """One page of the table as JSON-ready data (UsageError for a bad filter or key)."""
        rows, items = self.items(query)
        columns = self.columns(rows, query)
        limit = max(0, min(limit, MAX_PAGE))
        shown = items[offset : offset + limit]
        plain = [item for item in shown if isinstance(item, Row)]
        values = iter(self.values(plain, columns))
        out = []
        for item in shown:
            if isinstance(item, Row):
                out.append({"type": "row", **item.as_json(), "values": next(values)})
            else:
                out.append(item)
        self._served.set()
        with self._lock:
            total = len(self._runs)
            live = len(self._live)
        return json_safe(
            {
                "version": self.version,
                "total": total,
                "live": live,
                "histories_pending": self._filling,
                "matched": len(rows),
                "count": len(items),
                "offset": offset,
                "columns": [c.as_json() for c in columns],
                "items": out,
            }
        )

    def names(self, query: Query, limit: int) -> list[str]:
        return [r.entry.name for r in self.matched(query)[:limit]]


def live_name(run: LiveRun) -> str:
    return run.name or f"pid-{run.pid}"


def live_state(repo: Repo, run: LiveRun) -> tuple[dict[str, Any], dict[str, Any]]:
    """Params and metrics a run in progress has written so far, from its workspace."""
    target_repo = repo if run.root == repo.root else Repo.discover(run.root)
    with target_repo.batch_reader() as reader:
        (state,) = read_states(target_repo, [Target(label=WORKSPACE, rev=None)], reader)
    return {path: masked(flat) for path, flat in state.params.items()}, state.metrics


def live_metric_files(run: LiveRun) -> list[Path]:
    """The files whose changes mean a run in progress has flushed new metrics."""
    from gitexp.core.config import load_config

    def read(path: str) -> bytes | None:
        full = run.root / path
        return full.read_bytes() if full.is_file() else None

    try:
        files = [run.root / p for p in load_config(read).metrics_files]
    except (GitexpError, OSError):
        files = []
    if run.metrics_dir:
        files.append(Path(run.metrics_dir) / "metrics.json")
    return files


def _stamps(paths: Iterable[Path]) -> tuple[int, ...]:
    found = []
    for path in paths:
        try:
            found.append(path.stat().st_mtime_ns)
        except OSError:
            found.append(0)
    return tuple(found)


def live_histories(run: LiveRun, dirs: Sequence[str]) -> dict[str, Any]:
    """The histories a run in progress has flushed so far."""
    folders = list(dirs)
    if run.metrics_dir:
        rel = _inside(run.root, run.metrics_dir)
        if rel is not None:
            folders.insert(0, f"{rel}/plots/metrics")
    return histories_on_disk(run.root, folders)


def _inside(root: Path, path: str) -> str | None:
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except (ValueError, OSError):
        return None
