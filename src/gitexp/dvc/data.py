"""Datasets and artifacts, through DVC: their pointers, their hashes, and DVC's cache.

Two halves:
- reading pointers (`*.dvc` files, `dvc.lock`) and `.dir` listings from the cache: plain YAML
  and JSON, no DVC import, so `show` and `diff` stay fast;
- committing a run's outputs to DVC's cache (`commit_outputs`): DVC is imported here only,
  and its state cache means an unchanged dataset is not hashed again.
"""

from __future__ import annotations

import configparser
import json
import os
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitexp.core import yamlio
from gitexp.errors import GitexpError, RemoteError, StateError, StorageError, UsageError

DVC_LOCK = "dvc.lock"
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

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"hash": self.hash, "size": self.size}
        if self.nfiles is not None:
            data["nfiles"] = self.nfiles
        return data


def is_pointer_file(path: str) -> bool:
    return path.endswith(".dvc") or posixpath.basename(path) == DVC_LOCK


def parse_pointers(path: str, data: bytes) -> list[DataEntry]:
    """The outputs a `.dvc` file, or the outputs and dependencies `dvc.lock`, point to."""
    try:
        doc = yamlio.load(data, path)
    except GitexpError:
        return []
    if not isinstance(doc, dict):
        return []
    base = posixpath.dirname(path)
    items: list[dict[str, Any]] = []
    if posixpath.basename(path) == DVC_LOCK:
        for stage in (doc.get("stages") or {}).values():
            if isinstance(stage, dict):
                items += [i for i in (stage.get("outs") or []) + (stage.get("deps") or [])]
    else:
        items = list(doc.get("outs") or [])
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
        entries[rel] = DataEntry(
            path=rel,
            hash=str(digest),
            size=item.get("size"),
            nfiles=item.get("nfiles"),
            pointer=path,
        )
    return list(entries.values())


def collect(pointer_files: Mapping[str, bytes]) -> dict[str, DataEntry]:
    """Every tracked path of a revision or workspace, from its pointer files' contents."""
    found: dict[str, DataEntry] = {}
    for path in sorted(pointer_files):
        for entry in parse_pointers(path, pointer_files[path]):
            found.setdefault(entry.path, entry)
    return found


# --- the local cache, read without DVC ---------------------------------------------------------


def cache_dir(root: Path) -> Path:
    """DVC's local cache directory: `.dvc/cache` unless `.dvc/config(.local)` says otherwise."""
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


def cache_path(root: Path, digest: str) -> Path:
    return cache_dir(root) / "files" / "md5" / digest[:2] / digest[2:]


def read_cached(root: Path, digest: str) -> bytes | None:
    try:
        return cache_path(root, digest).read_bytes()
    except OSError:
        return None


def dir_listing(root: Path, digest: str) -> dict[str, str] | None:
    """{relpath: md5} of a directory object, or None when it is not in the local cache."""
    data = read_cached(root, digest)
    if data is None:
        return None
    try:
        return {item["relpath"]: item["md5"] for item in json.loads(data)}
    except (ValueError, KeyError, TypeError):
        return None


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
    listing: Callable[[str], dict[str, str] | None],
    show_all: bool = False,
) -> list[DataChange]:
    changes = []
    for path in sorted(set(old) | set(new)):
        a, b = old.get(path), new.get(path)
        if not show_all and a and b and a.hash == b.hash:
            continue
        counts: dict[str, int | None] = {}
        if a and b and a.hash.endswith(".dir") and b.hash.endswith(".dir"):
            la, lb = listing(a.hash), listing(b.hash)
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


def missing_from_cache(root: Path, tracked: Mapping[str, str]) -> list[str]:
    """The tracked paths (path -> hash) whose content the local cache lacks."""
    missing = []
    for path, digest in sorted(tracked.items()):
        if not cache_path(root, digest).exists():
            missing.append(path)
        elif digest.endswith(".dir"):
            listing = dir_listing(root, digest) or {}
            if any(not cache_path(root, h).exists() for h in listing.values()):
                missing.append(path)
    return missing


def ensure_in_cache(root: Path, tracked: Mapping[str, str]) -> None:
    """Fetches from the DVC remote what the local cache lacks, before anything in the
    workspace is changed, so a checkout never stops half-way for want of data (row W6)."""
    missing = missing_from_cache(root, tracked)
    if not missing:
        return
    try:
        transfer_objects(root, [tracked[p] for p in missing], push=False)
    except RemoteError as exc:
        raise StateError(
            f"{', '.join(missing)} not in the local DVC cache, and fetching failed: {exc}; "
            "run 'gitexp pull' where the DVC remote is reachable"
        ) from None
    still = missing_from_cache(root, tracked)
    if still:
        raise StateError(f"{', '.join(still)} is missing from the DVC remote too")


def unavailable(root: Path, digests: Iterable[str], remote: str | None = None) -> set[str]:
    """The objects (and directory objects with a missing file) that are in neither the local
    cache nor the DVC remote. Push checks this before any ref leaves (issue: DVC's transfer
    does not count a missing source object as failed)."""
    missing_locally = set()
    for digest in set(digests):
        if not cache_path(root, digest).exists():
            missing_locally.add(digest)
        elif digest.endswith(".dir"):
            listing = dir_listing(root, digest) or {}
            missing_locally |= {h for h in listing.values() if not cache_path(root, h).exists()}
    if not missing_locally:
        return set()
    from dvc.config import NoRemoteError
    from dvc.repo import Repo as DvcRepo

    with DvcRepo(os.fspath(root)) as dvc:
        try:
            remote_odb = dvc.cloud.get_remote_odb(remote, "push")
        except NoRemoteError as exc:
            raise _no_remote(exc) from exc
        try:
            present = set(remote_odb.oids_exist(sorted(missing_locally), jobs=4))
        except Exception as exc:  # network, permissions, missing bucket
            raise RemoteError(f"could not reach the DVC remote: {exc}".splitlines()[0]) from exc
    return missing_locally - present


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
                raise StateError(
                    f"data is missing from the DVC remote too: {again}".splitlines()[0]
                ) from again


def transfer_objects(
    root: Path, digests: Iterable[str], push: bool, remote: str | None = None
) -> int:
    """Copies objects (and the files of directory objects) between the local cache and the
    DVC remote: to it when `push`, from it otherwise. Returns how many were copied."""
    digests = sorted(set(digests))
    if not digests:
        return 0
    if not (root / ".dvc").is_dir():
        raise StateError("DVC is not set up in this workspace (no .dvc/): check out a branch")
    from dvc.config import NoRemoteError
    from dvc.repo import Repo as DvcRepo
    from dvc.ui import ui as dvc_ui
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.transfer import transfer

    with DvcRepo(os.fspath(root)) as dvc:
        try:
            remote_odb = dvc.cloud.get_remote_odb(remote, "push" if push else "fetch")
        except NoRemoteError as exc:
            raise _no_remote(exc) from exc
        local = dvc.cache.local
        source, dest = (local, remote_odb) if push else (remote_odb, local)
        oids = {HashInfo("md5", d) for d in digests}
        try:
            # DVC's own progress bar (tqdm): on a terminal it shows, in CI logs it stays quiet.
            with dvc_ui.progress(
                desc="Pushing data" if push else "Fetching data", unit="file", leave=True
            ) as bar:
                result = transfer(
                    source,
                    dest,
                    oids,
                    jobs=4,
                    shallow=False,
                    hardlink=False,
                    callback=bar.as_callback(),
                )
        except Exception as exc:  # network, permissions, missing bucket: all one remote error
            raise RemoteError(f"could not copy data {'to' if push else 'from'} the DVC "
                              f"remote: {exc}".splitlines()[0]) from exc  # fmt: skip
    if result.failed:
        names = ", ".join(sorted(h.value for h in result.failed)[:5])
        raise RemoteError(f"could not copy {len(result.failed)} object(s): {names}")
    return len(result.transferred)
