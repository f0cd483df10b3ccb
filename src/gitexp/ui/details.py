"""What the run page shows: the record, params and metrics, histories, the log, the files the
run changed, its data and artifacts, images and DVC plots, and the commands that return to it.
Also what it serves: files of a run's tree and objects of DVC's cache, nothing else.
"""

from __future__ import annotations

import contextlib
import mimetypes
import posixpath
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitexp.core.render import json_safe
from gitexp.dvc.data import cache_dir, collect, dir_listing
from gitexp.errors import GitexpError, UsageError
from gitexp.report.plots import IMAGE_SUFFIXES as PLOT_IMAGES
from gitexp.report.plots import dvc_yaml_paths, plot_data, plot_definitions
from gitexp.store.git import BatchReader, Repo, iter_lines_z
from gitexp.store.live import LiveRun
from gitexp.store.records import read_environment
from gitexp.store.snapshot import (
    LOG_PATH,
    RECORD_PATH,
    Target,
    read_pointer_files,
    read_states,
    resolve_target,
)
from gitexp.ui.histories import HISTORY_DIRS, HistoryCache, Series, downsample
from gitexp.ui.runs import RunTable, live_histories, live_name, live_state
from gitexp.ui.security import cache_file, tree_path

MAX_DIFF_BYTES = 2 * 1024 * 1024
MAX_LOG_BYTES = 2 * 1024 * 1024  # the page shows the end of a longer log
IMAGE_SUFFIXES = tuple(PLOT_IMAGES)
HISTORY_DIRS_PREFIXES = tuple(f"{d}/" for d in HISTORY_DIRS)
MAX_IMAGES = 60
MAX_PLOTS = 24
ENV_FIELDS = ("python", "platform", "cpu", "gpu", "env", "packages")
RECORD_SHOWN_APART = (*ENV_FIELDS, "params", "metrics", "carried", "tags", "errors", "data")


class NotFound(GitexpError):
    """Answered with 404."""


# --- diffs ------------------------------------------------------------------------------------


def code_diff(repo: Repo, old: str | None, new: str) -> dict[str, Any]:
    """The files `new` changed against `old` (its parent when None) as a patch, with a
    summary per file. The run record is left out; binary files are named, not shown."""
    common = ["--no-color", "--no-ext-diff", "--no-textconv", "-M"]
    spec = ["--end-of-options", old, new] if old else ["--root", "--end-of-options", new]
    command = ["diff", *common] if old else ["diff-tree", "-r", *common]
    paths = ["--", ".", f":(top,exclude){posixpath.dirname(RECORD_PATH)}"]
    status = repo.git([*command, "--name-status", "-z", *spec, *paths]).stdout
    counts = repo.git([*command, "--numstat", "-z", *spec, *paths]).stdout
    patch = repo.git([*command, "-p", *spec, *paths]).stdout
    files = _name_status(list(iter_lines_z(status)))
    _add_counts(files, list(iter_lines_z(counts)))
    truncated = len(patch) > MAX_DIFF_BYTES
    return {
        "files": list(files.values()),
        "patch": patch[:MAX_DIFF_BYTES].decode("utf-8", "replace"),
        "truncated": truncated,
    }


def _name_status(fields: list[str]) -> dict[str, dict[str, Any]]:
    files: dict[str, dict[str, Any]] = {}
    i = 0
    while i < len(fields):
        code = fields[i]
        if code[:1] in ("R", "C") and i + 2 < len(fields):
            files[fields[i + 2]] = {"status": code[0], "path": fields[i + 2], "from": fields[i + 1]}
            i += 3
        elif i + 1 < len(fields):
            files[fields[i + 1]] = {"status": code[:1], "path": fields[i + 1]}
            i += 2
        else:
            break
    return files


def _add_counts(files: dict[str, dict[str, Any]], fields: list[str]) -> None:
    """numstat -z: 'added TAB removed TAB path', or for a rename 'added TAB removed TAB'
    followed by the old and new paths as fields of their own."""
    i = 0
    while i < len(fields):
        added, removed, path = (fields[i].split("\t", 2) + ["", ""])[:3]
        if not path and i + 2 < len(fields):
            path = fields[i + 2]
            i += 3
        else:
            i += 1
        if path in files:
            binary = added == "-"
            files[path]["added"] = None if binary else int(added or 0)
            files[path]["removed"] = None if binary else int(removed or 0)
            files[path]["binary"] = binary


# --- the run page -----------------------------------------------------------------------------


def commands(name: str) -> list[dict[str, str]]:
    quoted = shlex.quote(name)
    branch = shlex.quote("from-" + name.replace("/", "-"))
    ref = shlex.quote(f"refs/runs/{name}")
    return [
        {"what": "check it out (HEAD detached at the run)", "command": f"gitexp checkout {quoted}"},
        {"what": "apply its changes to your workspace", "command": f"gitexp apply {quoted}"},
        {"what": "make a branch of it", "command": f"gitexp branch {quoted} {branch}"},
        {"what": "run it again and compare", "command": f"gitexp reproduce {quoted}"},
        {"what": "see what it changed", "command": f"git diff {ref}^ {ref}"},
    ]


def series_json(histories: dict[str, Series], max_points: int) -> dict[str, Any]:
    return {m: downsample(s, max_points).as_json() for m, s in sorted(histories.items())}


def run_page(
    repo: Repo, table: RunTable, cache: HistoryCache, name: str, max_points: int = 2000
) -> dict[str, Any]:
    live = table.live_run(name)
    row = table.find(name)
    if live is not None and (row is None or row.kind == "live"):
        return live_page(repo, live, cache, max_points)
    target = _found(repo, name)
    assert target.rev is not None
    with repo.batch_reader() as reader:
        (state,) = read_states(repo, [target], reader)
        environment = read_environment(reader, target.rev, state.record or {})
        log = reader.read(f"{target.rev}:{LOG_PATH}") or b""
        histories = cache.histories(reader, [target.rev])[target.rev]
        artifacts = _artifacts(repo, target, reader)
        listing = _tree_paths(repo, target.rev)
        plots, images = _plots_and_images(target.rev, listing, reader)
    record = state.record or {}
    row = table.find(target.run) if target.run else None
    base = record.get("base") if target.run else repo.resolve_commit(f"{target.rev}^")
    page = {
        "name": target.run or target.label,
        "kind": "run" if target.run else "revision",
        "rev": target.rev,
        "base": base,
        "status": record.get("status") if target.run else None,
        "record": {k: v for k, v in record.items() if k not in RECORD_SHOWN_APART},
        "environment": {k: environment[k] for k in ENV_FIELDS if environment.get(k) is not None},
        "params": row.entry.params if row else state.params,  # secret-looking values masked
        "metrics": state.metrics,
        "carried": state.carried,
        "errors": {**state.errors, **state.notes},
        "tags": row.entry.tags if row else record.get("tags") or {},
        "note": row.entry.note if row else None,
        "histories": series_json(histories, max_points),
        "log": _log_tail(log),
        "changes": code_diff(repo, base if target.run else None, target.rev),
        "artifacts": artifacts,
        # images the run logged: kept in git, or (binary, as log_image and log_figure
        # store them) in DVC's cache, shown when the cache has them
        "images": [{"path": p, "source": "file"} for p in images]
        + [
            {"path": f["path"], "source": "artifact"}
            for a in artifacts
            for f in (a.get("files") or [a])
            if f["path"].endswith(IMAGE_SUFFIXES) and f["in_cache"]
        ][:MAX_IMAGES],
        "plots": plots,
        "commands": commands(target.run) if target.run else [],
    }
    return json_safe(page)  # type: ignore[no-any-return]


def live_page(repo: Repo, run: LiveRun, cache: HistoryCache, max_points: int) -> dict[str, Any]:
    """A run in progress: what its workspace holds so far, and its log as far as it goes."""
    params, metrics = live_state(repo, run)
    log = b""
    if run.log is not None:
        with contextlib.suppress(OSError):
            log = run.log.read_bytes()
    return json_safe(
        {
            "name": live_name(run),
            "kind": "live",
            "rev": None,
            "base": repo.head(),
            "status": "running",
            "record": {
                "command": list(run.command),
                "started": _iso(run.started),
                "pid": run.pid,
                "workspace": str(run.root),
            },
            "environment": {},
            "params": params,
            "metrics": metrics,
            "carried": {},
            "errors": {},
            "tags": {},
            "note": None,
            "histories": series_json(live_histories(run, cache.dirs), max_points),
            "log": {**_log_tail(log), "live": run.log is not None, "offset": len(log)},
            "changes": None,
            "artifacts": [],
            "images": [],
            "plots": [],
            "commands": [],
        }
    )


def _iso(timestamp: float) -> str:
    from gitexp.store.records import iso_time

    return iso_time(timestamp)


def _log_tail(log: bytes) -> dict[str, Any]:
    return {
        "text": log[-MAX_LOG_BYTES:].decode("utf-8", "replace"),
        "size": len(log),
        "truncated": len(log) > MAX_LOG_BYTES,
    }


def live_log(table: RunTable, name: str, offset: int) -> dict[str, Any]:
    """What a run in progress printed since `offset` (from the start if its log started
    over); `running` turns false once the run has landed."""
    run = table.live_run(name)
    if run is None or run.log is None:
        return {"text": "", "offset": offset, "running": False}
    try:
        with open(run.log, "rb") as fh:
            size = fh.seek(0, 2)
            start = offset if 0 <= offset <= size else 0
            fh.seek(start)
            data = fh.read(MAX_LOG_BYTES)
    except OSError:
        return {"text": "", "offset": offset, "running": True}
    return {
        "text": data.decode("utf-8", "replace"),
        "offset": start + len(data),
        "reset": start != offset,
        "running": True,
    }


def _tree_paths(repo: Repo, rev: str) -> list[str]:
    return list(iter_lines_z(repo.git(["ls-tree", "-r", "-z", "--name-only", rev]).stdout))


def _artifacts(repo: Repo, target: Target, reader: BatchReader) -> list[dict[str, Any]]:
    """Every DVC-tracked path of the run with its size and hash, and whether the local cache
    has its content (then it can be downloaded, file by file for a folder)."""
    entries = collect(read_pointer_files(repo, target, reader))
    cache = cache_dir(repo.root)
    found = []
    for path, entry in sorted(entries.items()):
        item: dict[str, Any] = {
            "path": path,
            "hash": entry.hash,
            "size": entry.size,
            "nfiles": entry.nfiles,
            "pointer": entry.pointer,
        }
        if entry.hash.endswith(".dir"):
            listing = dir_listing(repo.root, entry.hash)
            item["in_cache"] = listing is not None
            item["files"] = [
                {"path": f"{path}/{rel}", "hash": md5, "in_cache": _cached(cache, md5)}
                for rel, md5 in sorted((listing or {}).items())[:1000]
            ]
        else:
            item["in_cache"] = _cached(cache, entry.hash)
        found.append(item)
    return found


def _cached(cache: Path, digest: str) -> bool:
    try:
        return cache_file(cache, digest).is_file()
    except UsageError:
        return False


def _plots_and_images(
    rev: str, listing: list[str], reader: BatchReader
) -> tuple[list[dict[str, Any]], list[str]]:
    """The plots of the run as `gitexp report` finds them (dvc.yaml's, else DVCLive's and
    history/ files): lines, and confusion pairs, thinned; images apart. Per-step metric
    histories are left to the history charts."""
    read = lambda path: reader.read(f"{rev}:{path}")  # noqa: E731
    yamls = {p: read(p) or b"" for p in dvc_yaml_paths(listing)}
    chosen = [
        d
        for d in plot_definitions(listing, yamls, read)
        if not all(f.startswith(HISTORY_DIRS_PREFIXES) for f in d.files)
    ][:MAX_PLOTS]
    images = [f for d in chosen if d.template == "image" for f in d.files if f in listing]
    tables = [d for d in chosen if d.template != "image"]
    paths = list(dict.fromkeys(f for d in tables for f in d.files))
    blobs = dict(zip(paths, reader.read_many([f"{rev}:{p}" for p in paths]), strict=True))
    plots = []
    for definition in tables:
        data = plot_data(definition, blobs)
        if data is None or not (data.curves or data.pairs):
            continue
        series = []
        for curve in data.curves:
            thin = downsample(Series(list(curve.xs), list(curve.ys)), 2000)
            series.append({"name": curve.name, "x": thin.steps, "y": thin.values})
        plots.append(
            {
                "title": definition.title or definition.id,
                "template": definition.template,
                "x": data.curves[0].x_field if data.curves else None,
                "series": series,
                "pairs": data.pairs[:100_000],
            }
        )
    return plots, images


# --- serving files ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Download:
    data: bytes | None
    path: Path | None  # a file of DVC's cache, streamed
    filename: str
    media_type: str
    inline: bool  # an image the page shows


def _media(path: str) -> tuple[str, bool]:
    kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
    inline = path.endswith(IMAGE_SUFFIXES)
    if not inline or kind == "image/svg+xml":
        # text types are sent as plain text or bytes: nothing a browser would render
        kind = "text/plain; charset=utf-8" if kind.startswith("text/") else kind
    return kind, inline


def _found(repo: Repo, name: str) -> Target:
    try:
        return resolve_target(repo, name)
    except UsageError as exc:
        raise NotFound(str(exc)) from None


def run_file(repo: Repo, name: str, raw_path: str) -> Download:
    """A file of the run's commit (its log, an image, a small artifact kept in git)."""
    path = tree_path(raw_path)
    target = _found(repo, name)
    with repo.batch_reader() as reader:
        data = reader.read(f"{target.rev}:{path}")
    if data is None:
        raise NotFound(f"{path} is not a file of {name}")
    kind, inline = _media(path)
    return Download(data, None, posixpath.basename(path), kind, inline)


def artifact_file(repo: Repo, name: str, raw_path: str) -> Download:
    """A DVC-tracked file of the run, from the local DVC cache: found through the run's own
    pointers (a folder's listing for a file inside one), never by a path on disk."""
    path = tree_path(raw_path)
    target = _found(repo, name)
    with repo.batch_reader() as reader:
        entries = collect(read_pointer_files(repo, target, reader))
    digest = None
    if path in entries and not entries[path].hash.endswith(".dir"):
        digest = entries[path].hash
    else:
        for folder, entry in entries.items():
            if entry.hash.endswith(".dir") and path.startswith(folder + "/"):
                listing = dir_listing(repo.root, entry.hash) or {}
                digest = listing.get(path[len(folder) + 1 :])
                break
    if digest is None:
        raise NotFound(f"{path} is not data of {name}")
    file = cache_file(cache_dir(repo.root), digest)
    if not file.is_file():
        raise NotFound(f"{path} is not in the local DVC cache: fetch it with 'gitexp pull'")
    kind, inline = _media(path)
    return Download(None, file, posixpath.basename(path), kind, inline)
