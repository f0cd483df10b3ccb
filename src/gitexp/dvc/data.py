"""Datasets and artifacts, through DVC: their pointers, their hashes, and DVC's cache.

Two halves:
- reading pointers (`*.dvc` files, `dvc.lock`) and `.dir` listings from the cache: plain YAML
  and JSON, no DVC import, so `show` and `diff` stay fast;
- committing a run's outputs to DVC's cache (`commit_outputs`): DVC is imported here only,
  and its state cache means an unchanged dataset is not hashed again.
"""

from __future__ import annotations

import configparser
import functools
import os
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitexp.core import dvcyaml, yamlio
from gitexp.errors import GitexpError, RemoteError, StateError, StorageError, UsageError

DVC_LOCK = "dvc.lock"
DVC_YAML = "dvc.yaml"
# Hashes become cache paths: only hex digests (md5, etags) with DVC's `.dir` suffix pass.
_SAFE_HASH = re.compile(r"^[0-9a-fA-F][0-9a-fA-F-]{7,127}(\.dir)?$")


@dataclass(frozen=True)
class DataEntry:
    """One DVC-tracked path as a pointer describes it."""

    path: str  # relative to the repository root
    hash: str  # an md5, ending in '.dir' for a directory
    size: int | None
    nfiles: int | None
    pointer: str  # the file that holds the pointer: 'data.dvc' or 'dvc.lock'
    legacy: bool = False  # written by DVC 2 (no `hash: md5`): its object is in the old layout

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"hash": self.hash, "size": self.size}
        if self.nfiles is not None:
            data["nfiles"] = self.nfiles
        if self.legacy:
            data["legacy"] = True
        return data

    @classmethod
    def from_json(cls, path: str, data: Any) -> DataEntry | None:
        """An entry of a run record's `data` section (None when it is not one)."""
        if not isinstance(data, dict) or not isinstance(data.get("hash"), str):
            return None
        if not _SAFE_HASH.match(data["hash"]):
            return None
        size, nfiles = data.get("size"), data.get("nfiles")
        return cls(
            path,
            data["hash"],
            size if isinstance(size, int) else None,
            nfiles if isinstance(nfiles, int) else None,
            "",
            data.get("legacy") is True,
        )

    @property
    def obj(self) -> Obj:
        return Obj(self.hash, self.legacy)


@dataclass(frozen=True, order=True)
class Obj:
    """An object in DVC's cache: its md5 (with `.dir` for a directory listing) and whether it
    lives in DVC 2's layout (`cache/ab/cdef`) rather than DVC 3's (`cache/files/md5/ab/cdef`)."""

    digest: str
    legacy: bool = False


def is_pointer_file(path: str) -> bool:
    return path.endswith(".dvc") or posixpath.basename(path) == DVC_LOCK


def is_dvc_file(path: str) -> bool:
    """A pointer file or a dvc.yaml (which says which lock entries are current)."""
    return is_pointer_file(path) or posixpath.basename(path) == DVC_YAML


def parse_pointers(
    path: str, data: bytes, pipeline: dvcyaml.Pipeline | None = None
) -> list[DataEntry]:
    """The outputs a `.dvc` file or a `dvc.lock` points to. Only outputs are DVC's: a stage's
    deps are code and data that git or another pointer tracks. With the `pipeline` of the
    dvc.yaml beside a lock, entries of stages it no longer has and `cache: false` outputs
    (which git keeps) are left out, as `dvc push` and `dvc checkout` leave them."""
    try:
        doc = yamlio.load(data, path)
    except GitexpError:
        return []
    if not isinstance(doc, dict):
        return []
    base = posixpath.dirname(path)
    items: list[Any] = []
    if posixpath.basename(path) == DVC_LOCK:
        for name, stage in (doc.get("stages") or {}).items():
            if isinstance(stage, dict) and (pipeline is None or name in pipeline.stages):
                items += stage.get("outs") or []
    else:
        items = list(doc.get("outs") or [])
    uncached = pipeline.uncached() if pipeline else set()
    entries = {}
    for item in items:
        if not isinstance(item, dict) or "path" not in item:
            continue
        digest = item.get("md5") or item.get("etag") or item.get("checksum")
        if isinstance(digest, int) and not isinstance(digest, bool):  # an all-digit md5
            digest = f"{digest:032d}"
        if not isinstance(digest, str) or not _SAFE_HASH.match(digest):
            continue  # never a path into or out of the cache (row S2)
        rel = posixpath.normpath(posixpath.join(base, str(item["path"])))
        if rel in uncached or item.get("cache") is False:
            continue
        entries[rel] = DataEntry(
            path=rel,
            hash=str(digest),
            size=item.get("size"),
            nfiles=item.get("nfiles"),
            pointer=path,
            legacy="hash" not in item and "md5" in item,
        )
    return list(entries.values())


def collect(files: Mapping[str, bytes]) -> dict[str, DataEntry]:
    """Every DVC-tracked path of a revision or workspace, from its pointer files and the
    dvc.yaml files beside its locks."""
    pipelines = {}
    for path, data in files.items():
        if posixpath.basename(path) == DVC_YAML:
            try:
                pipelines[posixpath.dirname(path)] = dvcyaml.parse(data, path, files.get)
            except GitexpError:
                continue
    found: dict[str, DataEntry] = {}
    for path in sorted(files):
        if not is_pointer_file(path):
            continue
        pipeline = pipelines.get(posixpath.dirname(path))
        beside = posixpath.join(posixpath.dirname(path), DVC_YAML)
        if posixpath.basename(path) == DVC_LOCK and beside not in files:
            continue  # a lock without its dvc.yaml: every entry is stale
        for entry in parse_pointers(path, files[path], pipeline):
            found.setdefault(entry.path, entry)
    return found


def entry_of(tracked: Mapping[str, DataEntry], path: str) -> tuple[DataEntry, str] | None:
    """The tracked output that holds `path`, and the path's place inside it ('' when the
    output is the path itself): metrics often live inside a cached output directory."""
    if path in tracked:
        return tracked[path], ""
    parent = posixpath.dirname(path)
    while parent:
        entry = tracked.get(parent)
        if entry is not None:
            return entry, path[len(parent) + 1 :]
        parent = posixpath.dirname(parent)
    return None


# --- the local cache, read without DVC ---------------------------------------------------------


def cache_dir(root: Path) -> Path:
    """DVC's local cache directory: `.dvc/cache` unless `.dvc/config(.local)` says otherwise
    (read once per version of those files: a push asks for every object's path)."""
    stamps = []
    for name in ("config", "config.local"):
        try:
            info = (root / ".dvc" / name).stat()
            stamps.append((info.st_mtime_ns, info.st_size, info.st_ino))
        except OSError:
            stamps.append(None)
    return _cache_dir(root, tuple(stamps))


@functools.lru_cache(maxsize=8)
def _cache_dir(root: Path, _stamps: tuple[Any, ...]) -> Path:
    directory = root / ".dvc" / "cache"
    for name in ("config", "config.local"):
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        try:
            parser.read(root / ".dvc" / name)
        except configparser.Error:
            continue
        value = parser.get("cache", "dir", fallback=None)
        if value:
            candidate = Path(value.strip().strip("'\""))
            directory = candidate if candidate.is_absolute() else root / ".dvc" / candidate
    return directory


def cache_path(root: Path, obj: Obj | str) -> Path:
    obj = obj if isinstance(obj, Obj) else Obj(obj)
    base = cache_dir(root) if obj.legacy else cache_dir(root) / "files" / "md5"
    return base / obj.digest[:2] / obj.digest[2:]


def read_cached(root: Path, obj: Obj | str) -> bytes | None:
    try:
        return cache_path(root, obj).read_bytes()
    except OSError:
        return None


def dir_listing(root: Path, obj: Obj | str) -> dict[str, str] | None:
    """{relpath: md5} of a directory object, or None when it is not in the local cache."""
    data = read_cached(root, obj)
    if data is None:
        return None
    try:
        return {item["relpath"]: item["md5"] for item in yamlio.load_json(data, "listing")}
    except (GitexpError, KeyError, TypeError):
        return None


def read_tracked(root: Path, entry: DataEntry, inside: str = "") -> bytes | None:
    """The content of a tracked file, or of a file `inside` a tracked directory, from the
    local cache (None when the cache lacks it)."""
    if not inside:
        return read_cached(root, entry.obj)
    listing = dir_listing(root, entry.obj) or {}
    digest = listing.get(inside)
    return read_cached(root, Obj(digest, entry.legacy)) if digest else None


def objects_of(entries: Iterable[DataEntry]) -> set[Obj]:
    return {e.obj for e in entries}


@dataclass(frozen=True)
class DataChange:
    path: str
    old: DataEntry | None
    new: DataEntry | None
    added: int | None = None  # for directories whose listings are in the cache
    removed: int | None = None
    modified: int | None = None


def diff_data(
    old: Mapping[str, DataEntry],
    new: Mapping[str, DataEntry],
    listing: Callable[[DataEntry], dict[str, str] | None],
    show_all: bool = False,
) -> list[DataChange]:
    changes = []
    for path in sorted(set(old) | set(new)):
        a, b = old.get(path), new.get(path)
        if not show_all and a and b and a.hash == b.hash:
            continue
        counts: dict[str, int | None] = {}
        if a and b and a.hash.endswith(".dir") and b.hash.endswith(".dir"):
            la, lb = listing(a), listing(b)
            if la is not None and lb is not None:
                counts = {
                    "added": len(lb.keys() - la.keys()),
                    "removed": len(la.keys() - lb.keys()),
                    "modified": sum(1 for k in la.keys() & lb.keys() if la[k] != lb[k]),
                }
        changes.append(DataChange(path, a, b, **counts))
    return changes


def data_json(changes: Iterable[DataChange]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c in changes:
        item: dict[str, Any] = {
            "old": c.old.as_json() if c.old else None,
            "new": c.new.as_json() if c.new else None,
        }
        if c.added is not None:
            item.update(added=c.added, removed=c.removed, modified=c.modified)
        out[c.path] = item
    return out


# --- committing outputs (imports DVC) --------------------------------------------------------


@dataclass(frozen=True)
class Committed:
    path: str
    hash: str
    size: int | None
    nfiles: int | None


def commit_outputs(root: Path, paths: Iterable[str]) -> list[Committed]:
    """Hashes each path (DVC's state cache skips unchanged files) and copies its content into
    DVC's local cache, as `dvc commit` does, without touching the workspace."""
    paths = list(paths)
    if not paths:
        return []
    if not (root / ".dvc").is_dir():
        raise UsageError("DVC is not set up in this repository: run 'gitexp init' first")
    from dvc.fs import localfs
    from dvc.repo import Repo as DvcRepo
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.transfer import transfer

    results = []
    with DvcRepo(os.fspath(root)) as dvc:
        odb = dvc.cache.local
        for rel in paths:
            full = os.fspath(root / rel)
            if not os.path.lexists(full):
                raise StateError(f"output '{rel}' does not exist after the command ran")
            try:
                staging, meta, obj = build(odb, full, localfs, "md5", ignore=dvc.dvcignore)
                result = transfer(staging, odb, {obj.hash_info}, shallow=False, hardlink=False)
            except OSError as exc:
                raise StorageError(f"could not store '{rel}' in DVC's cache: {exc}") from exc
            # transfer() reports the objects it could not copy instead of raising (row R3):
            # a run must never point at an object the cache does not have.
            if result.failed:
                raise StorageError(
                    f"could not store '{rel}' in DVC's cache ({len(result.failed)} object(s) "
                    "failed, see above; is its disk full?); the run was not recorded"
                )
            nfiles = meta.nfiles if meta.isdir else None
            results.append(Committed(rel, str(obj.hash_info.value), meta.size, nfiles))
    return results


def pointer_text(entry: Committed) -> str:
    """A `.dvc` file for one output, in DVC 3's format."""
    lines = ["outs:", f"- md5: {entry.hash}"]
    if entry.size is not None:
        lines.append(f"  size: {entry.size}")
    if entry.nfiles is not None:
        lines.append(f"  nfiles: {entry.nfiles}")
    lines += ["  hash: md5", f"  path: {yamlio.dump_inline(posixpath.basename(entry.path))}"]
    return "\n".join(lines) + "\n"


def current_hashes(root: Path, paths: Iterable[str]) -> dict[str, str]:
    """The hash each existing path has on disk now (DVC's state cache makes this cheap for
    unchanged data); nothing is written to the cache."""
    paths = [p for p in paths if os.path.lexists(root / p)]
    if not paths:
        return {}
    from dvc.fs import localfs
    from dvc.repo import Repo as DvcRepo
    from dvc_data.hashfile.build import build

    with DvcRepo(os.fspath(root)) as dvc:
        odb = dvc.cache.local
        found = {}
        for rel in paths:
            _, _, obj = build(
                odb, os.fspath(root / rel), localfs, "md5", ignore=dvc.dvcignore, dry_run=True
            )
            found[rel] = str(obj.hash_info.value)
    return found


def _no_remote(_exc: Exception) -> RemoteError:
    # DVC's own text spreads over lines and names its own commands; ours is one line.
    return RemoteError("no DVC remote is configured: add one with 'dvc remote add -d NAME URL'")


def _missing_objects(root: Path, obj: Obj) -> set[Obj]:
    """The object itself, or for a directory the files of it, that the local cache lacks."""
    if not cache_path(root, obj).exists():
        return {obj}
    if obj.digest.endswith(".dir"):
        listing = dir_listing(root, obj) or {}
        return {
            Obj(h, obj.legacy)
            for h in listing.values()
            if not cache_path(root, Obj(h, obj.legacy)).exists()
        }
    return set()


def missing_from_cache(root: Path, tracked: Mapping[str, DataEntry]) -> list[str]:
    """The tracked paths whose content the local cache lacks."""
    return [path for path, entry in sorted(tracked.items()) if _missing_objects(root, entry.obj)]


def ensure_in_cache(root: Path, tracked: Mapping[str, DataEntry]) -> None:
    """Fetches from the DVC remote what the local cache lacks, before anything in the
    workspace is changed, so a checkout never stops half-way for want of data (row W6)."""
    missing = missing_from_cache(root, tracked)
    if not missing:
        return
    try:
        transfer_objects(root, [tracked[p].obj for p in missing], push=False)
    except RemoteError as exc:
        raise StateError(
            f"{', '.join(missing)} not in the local DVC cache, and fetching failed: {exc}; "
            "run 'gitexp pull' where the DVC remote is reachable"
        ) from None
    still = missing_from_cache(root, tracked)
    if still:
        raise StateError(f"{', '.join(still)} is missing from the DVC remote too")


def unavailable(root: Path, objects: Iterable[Obj], remote: str | None = None) -> set[Obj]:
    """The objects (and directory objects with a missing file) that are in neither the local
    cache nor the DVC remote. Push checks this before any ref leaves: DVC's transfer does not
    count a missing source object as failed."""
    missing_locally: set[Obj] = set()
    for obj in set(objects):
        missing_locally |= _missing_objects(root, obj)
    if not missing_locally:
        return set()
    from dvc.config import NoRemoteError
    from dvc.repo import Repo as DvcRepo

    present: set[Obj] = set()
    with DvcRepo(os.fspath(root)) as dvc:
        for legacy in (False, True):
            digests = sorted(o.digest for o in missing_locally if o.legacy is legacy)
            if not digests:
                continue
            try:
                odb = dvc.cloud.get_remote_odb(remote, "push", hash_name=_hash_name(legacy))
            except NoRemoteError as exc:
                raise _no_remote(exc) from exc
            try:
                present |= {Obj(d, legacy) for d in odb.oids_exist(digests, jobs=4)}
            except Exception as exc:  # network, permissions, missing bucket
                raise RemoteError(f"could not reach the DVC remote: {exc}".splitlines()[0]) from exc
    return missing_locally - present


def _hash_name(legacy: bool) -> str:
    return "md5-dos2unix" if legacy else "md5"


def checkout_data(root: Path, remote: str | None = None) -> None:
    """Puts the data that the workspace's pointers name on disk, fetching what the local
    cache lacks from the DVC remote."""
    if not (root / ".dvc").is_dir():
        return
    from dvc.config import NoRemoteError
    from dvc.exceptions import CheckoutError
    from dvc.repo import Repo as DvcRepo

    with DvcRepo(os.fspath(root)) as dvc:
        try:
            dvc.checkout(force=True)
        except CheckoutError as exc:
            try:
                dvc.fetch(remote=remote)
            except NoRemoteError as no_remote:
                missing = ", ".join(str(t) for t in exc.target_infos) or "some data"
                raise StateError(
                    f"{missing} is not in the local DVC cache and no DVC remote is configured: "
                    "run 'gitexp pull' from a repository that has it"
                ) from no_remote
            except Exception as fetch_error:  # DVC raises many kinds for a remote it cannot read
                raise RemoteError(f"could not fetch data: {fetch_error}") from fetch_error
            try:
                dvc.checkout(force=True)
            except CheckoutError as again:
                missing = ", ".join(str(t) for t in again.target_infos) or str(again)
                raise StateError(
                    " ".join(f"data is missing from the DVC remote too: {missing}".split())
                ) from again


def preload() -> None:
    """Imports DVC now: before forking workers that all use it, once instead of in each."""
    import dvc.repo  # noqa: F401


def transfer_objects(
    root: Path, objects: Iterable[Obj], push: bool, remote: str | None = None
) -> int:
    """Copies objects (and the files of directory objects) between the local cache and the
    DVC remote: to it when `push`, from it otherwise; DVC 2's objects between the old
    layouts. Returns how many were copied."""
    objects = sorted(set(objects))
    if not objects:
        return 0
    if not (root / ".dvc").is_dir():
        raise StateError("DVC is not set up in this workspace (no .dvc/): check out a branch")
    from dvc.config import NoRemoteError
    from dvc.repo import Repo as DvcRepo
    from dvc.ui import ui as dvc_ui
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.transfer import transfer

    copied, failed = 0, []
    with DvcRepo(os.fspath(root)) as dvc:
        for legacy in (False, True):
            chosen = [o for o in objects if o.legacy is legacy]
            if not chosen:
                continue
            name = _hash_name(legacy)
            try:
                remote_odb = dvc.cloud.get_remote_odb(remote, "push" if push else "fetch", name)
            except NoRemoteError as exc:
                raise _no_remote(exc) from exc
            local = dvc.cache.legacy if legacy else dvc.cache.local
            source, dest = (local, remote_odb) if push else (remote_odb, local)
            oids = {HashInfo(name, o.digest) for o in chosen}
            try:
                # DVC's own progress bar (tqdm): shown on a terminal, quiet in CI logs.
                with dvc_ui.progress(
                    desc="Pushing data" if push else "Fetching data", unit="file", leave=True
                ) as bar:
                    result = transfer(source, dest, oids, jobs=4, shallow=False,
                                      hardlink=False, callback=bar.as_callback())  # fmt: skip
            except Exception as exc:  # network, permissions, missing bucket: a remote error
                raise RemoteError(f"could not copy data {'to' if push else 'from'} the DVC "
                                  f"remote: {exc}".splitlines()[0]) from exc  # fmt: skip
            copied += len(result.transferred)
            failed += sorted(h.value for h in result.failed)
    if failed:
        raise RemoteError(f"could not copy {len(failed)} object(s): {', '.join(failed[:5])}")
    return copied
