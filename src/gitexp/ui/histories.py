"""Metric histories (a value per step): finding their files in many run commits at once,
parsing them with their step column, summarising them (last, min, max) and thinning them for
a chart.

The files are what DVCLive and gitexp's Python API write (`dvclive/plots/metrics/<key>.tsv`:
`timestamp step key` or `step key`) and any TSV/CSV under `history/` with a header (a `step`,
`epoch` or `iteration` column is the x axis, else the row number). Parsed files are cached by
blob id, so a history shared by many runs is read once.
"""

from __future__ import annotations

import csv
import io
import json
import math
import posixpath
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitexp.store.git import BatchReader

HISTORY_DIRS = ("history", "dvclive/plots/metrics")  # where per-step files are looked for
STEP_COLUMNS = ("step", "epoch", "iteration", "iter")
SKIPPED_COLUMNS = ("timestamp",)
SUFFIXES = (".tsv", ".csv", ".json")
MAX_FILES = 400  # per run
MAX_ROWS = 1_000_000  # per file
MAX_FILE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Series:
    steps: list[float]
    values: list[float | None]  # None where the value is NaN, infinite or not a number

    def stats(self) -> dict[str, Any]:
        finite = [v for v in self.values if v is not None]
        return {
            "last": finite[-1] if finite else None,
            "min": min(finite) if finite else None,
            "max": max(finite) if finite else None,
            "steps": len(self.steps),
        }

    def as_json(self) -> dict[str, Any]:
        return {"steps": self.steps, "values": self.values}


History = dict[str, Series]


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def metric_name(path: str, base: str, column: str, columns: int) -> str:
    """'dvclive/plots/metrics/train/loss.tsv' is 'train/loss'; a file of several value
    columns gives a metric per column, in its folder."""
    rel = posixpath.relpath(path, base) if base else path
    stem = rel.rsplit(".", 1)[0]
    if columns == 1:
        return stem
    folder = posixpath.dirname(stem)
    return f"{folder}/{column}" if folder else column


def parse_history(data: bytes, path: str, base: str = "") -> History:
    """The series of one file; a file that is not a table of numbers gives none."""
    if len(data) > MAX_FILE_BYTES:
        return {}
    text = data.decode("utf-8-sig", "replace")
    if path.endswith(".json"):
        return _parse_json(text, path, base)
    try:
        rows = csv.reader(io.StringIO(text), delimiter="\t" if path.endswith(".tsv") else ",")
        header = next(rows, None)
    except csv.Error:
        return {}
    if not header:
        return {}
    header = [h.strip() for h in header]
    lowered = [h.lower() for h in header]
    step_at = next((lowered.index(c) for c in STEP_COLUMNS if c in lowered), None)
    value_at = [i for i, h in enumerate(lowered) if i != step_at and h not in SKIPPED_COLUMNS and h]
    if not value_at:
        return {}
    steps: list[float] = []
    columns: list[list[float | None]] = [[] for _ in value_at]
    try:
        for count, row in enumerate(rows):
            if count >= MAX_ROWS:
                break
            if not row:
                continue
            step = _number(row[step_at]) if step_at is not None and step_at < len(row) else None
            steps.append(float(count) if step is None else step)
            for values, i in zip(columns, value_at, strict=True):
                values.append(_number(row[i]) if i < len(row) else None)
    except csv.Error:
        return {}
    if not steps:
        return {}
    return {
        metric_name(path, base, header[i], len(value_at)): Series(steps, values)
        for i, values in zip(value_at, columns, strict=True)
    }


def json_rows(text: str) -> list[dict[str, Any]]:
    """The rows of a JSON plot file: a list of objects, or {KEY: [objects]} (DVC's and
    DVCLive's forms); nothing for anything else."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return []
    if isinstance(doc, dict) and len(doc) == 1:
        doc = next(iter(doc.values()))
    if not isinstance(doc, list) or not all(isinstance(r, dict) for r in doc):
        return []
    return doc


def _parse_json(text: str, path: str, base: str) -> History:
    """DVCLive's older JSON plots: a list of {step, KEY} rows, or {KEY: [rows]}."""
    doc = json_rows(text)
    if not doc:
        return {}
    keys = [k for k in doc[0] if k.lower() not in STEP_COLUMNS + SKIPPED_COLUMNS]
    step_key = next((k for k in doc[0] if k.lower() in STEP_COLUMNS), None)
    steps = [
        (_number(str(r.get(step_key))) if step_key else None) or float(i)
        for i, r in enumerate(doc[:MAX_ROWS])
    ]
    return {
        metric_name(path, base, key, len(keys)): Series(
            steps, [_number(str(r.get(key))) for r in doc[:MAX_ROWS]]
        )
        for key in keys
    }


def downsample(series: Series, max_points: int) -> Series:
    """At most `max_points` points chosen by largest-triangle-three-buckets, which keeps a
    curve's peaks and dips, so a chart of a 100,000-step run stays fast and faithful."""
    points = [(s, v) for s, v in zip(series.steps, series.values, strict=True) if v is not None]
    if len(points) <= max_points or max_points < 3:
        return Series([p[0] for p in points], [p[1] for p in points])
    chosen = [points[0]]
    bucket = (len(points) - 2) / (max_points - 2)
    previous = points[0]
    for i in range(max_points - 2):
        start, end = int(i * bucket) + 1, int((i + 1) * bucket) + 1
        following = points[end : min(int((i + 2) * bucket) + 1, len(points))] or [points[-1]]
        avg_x = sum(p[0] for p in following) / len(following)
        avg_y = sum(p[1] for p in following) / len(following)  # type: ignore[misc]
        best, best_area = points[start], -1.0
        for p in points[start:end]:
            area = abs(
                (previous[0] - avg_x) * (p[1] - previous[1])  # type: ignore[operator]
                - (previous[0] - p[0]) * (avg_y - previous[1])  # type: ignore[operator]
            )
            if area > best_area:
                best, best_area = p, area
        chosen.append(best)
        previous = best
    chosen.append(points[-1])
    return Series([p[0] for p in chosen], [p[1] for p in chosen])


# --- finding the files in commits ----------------------------------------------------------


def _tree_entries(data: bytes, oid_bytes: int) -> list[tuple[bytes, str, str]]:
    """(mode, name, hex id) of each entry of a tree object."""
    entries, pos = [], 0
    while pos < len(data):
        space = data.index(b" ", pos)
        nul = data.index(b"\0", space)
        oid = data[nul + 1 : nul + 1 + oid_bytes].hex()
        entries.append((data[pos:space], data[space + 1 : nul].decode("utf-8", "replace"), oid))
        pos = nul + 1 + oid_bytes
    return entries


def list_files(
    reader: BatchReader, revs: Sequence[str], dirs: Sequence[str], suffixes: Iterable[str]
) -> dict[str, dict[str, str]]:
    """{rev: {path: blob id}} of the files under `dirs` in each commit, in a few batched
    reads whatever the number of commits (one per folder level)."""
    suffixes = tuple(suffixes)
    found: dict[str, dict[str, str]] = {rev: {} for rev in revs}
    pending = [(rev, d, f"{rev}:{d}") for rev in revs for d in dirs]
    for _depth in range(8):
        if not pending:
            break
        objects = reader.read_objects([spec for _, _, spec in pending])
        following = []
        for (rev, folder, _), obj in zip(pending, objects, strict=True):
            if obj is None or obj[0] != b"tree":
                continue
            for mode, name, oid in _tree_entries(obj[1], len(rev) // 2):
                path = f"{folder}/{name}"
                if mode == b"40000":
                    following.append((rev, path, oid))
                elif (
                    mode in (b"100644", b"100755")
                    and name.endswith(suffixes)
                    and len(found[rev]) < MAX_FILES
                ):
                    found[rev][path] = oid
        pending = following
    return found


def _base_of(path: str, dirs: Sequence[str]) -> str:
    return next((d for d in dirs if path.startswith(d + "/")), "")


class HistoryCache:
    """Histories of commits, cached: summaries by commit (small, kept), parsed files by blob
    id (bounded). Commits never change, so nothing here goes stale."""

    def __init__(self, dirs: Sequence[str] = HISTORY_DIRS, max_blobs: int = 4000) -> None:
        self.dirs = tuple(dirs)
        self.max_blobs = max_blobs
        self._files: dict[str, dict[str, str]] = {}
        self._parsed: OrderedDict[str, History] = OrderedDict()
        self._stats: dict[str, dict[str, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def _ensure_listed(self, reader: BatchReader, revs: Sequence[str]) -> None:
        with self._lock:
            missing = [r for r in dict.fromkeys(revs) if r not in self._files]
        if missing:
            listed = list_files(reader, missing, self.dirs, SUFFIXES)
            with self._lock:
                self._files.update(listed)

    def histories(self, reader: BatchReader, revs: Sequence[str]) -> dict[str, History]:
        """{rev: {metric: Series}} for each commit."""
        self._ensure_listed(reader, revs)
        with self._lock:
            files = {rev: self._files.get(rev, {}) for rev in revs}
            wanted = {oid for paths in files.values() for oid in paths.values()}
            missing = [oid for oid in wanted if oid not in self._parsed]
        blobs = dict(zip(missing, reader.read_many(missing), strict=True)) if missing else {}
        result: dict[str, History] = {}
        with self._lock:
            for rev, paths in files.items():
                merged: History = {}
                for path, oid in sorted(paths.items()):
                    if oid not in self._parsed:
                        data = blobs.get(oid)
                        base = _base_of(path, self.dirs)
                        self._parsed[oid] = {} if data is None else parse_history(data, path, base)
                    self._parsed.move_to_end(oid)
                    for metric, series in self._parsed[oid].items():
                        merged.setdefault(metric, series)
                result[rev] = merged
                self._stats[rev] = {m: s.stats() for m, s in merged.items()}
            while len(self._parsed) > self.max_blobs:
                self._parsed.popitem(last=False)
        return result

    def stats(self, reader: BatchReader, revs: Sequence[str]) -> dict[str, dict[str, Any]]:
        """{rev: {metric: {last, min, max, steps}}}, reading only commits not seen before."""
        with self._lock:
            missing = [r for r in revs if r not in self._stats]
        for start in range(0, len(missing), 500):
            self.histories(reader, missing[start : start + 500])
        with self._lock:
            return {rev: self._stats.get(rev, {}) for rev in revs}

    def known_stats(self, revs: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The summaries already computed, without reading anything."""
        with self._lock:
            return {rev: self._stats[rev] for rev in revs if rev in self._stats}


def histories_on_disk(root: Path, dirs: Sequence[str]) -> History:
    """The histories of a run in progress, from its workspace (never outside `root`)."""
    merged: History = {}
    base = root.resolve()
    for folder in dirs:
        top = (root / folder).resolve()
        if base not in top.parents or not top.is_dir():
            continue
        files = sorted(p for p in top.rglob("*") if p.suffix in SUFFIXES and p.is_file())
        for path in files[:MAX_FILES]:
            real = path.resolve()
            if top not in real.parents:
                continue
            try:
                data = real.read_bytes()
            except OSError:
                continue
            rel = path.relative_to(top).as_posix()
            for metric, series in parse_history(data, rel).items():
                merged.setdefault(metric, series)
    return merged
