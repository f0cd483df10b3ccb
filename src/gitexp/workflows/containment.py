"""Refusing run trees that would write outside the workspace (rows S1, S2).

A run pulled from a remote is untrusted. Before `checkout`, `apply`, `reproduce` or `branch`
write anything (and before DVC is called), every path of the run's tree and every output its
DVC pointers name is resolved the way the file system would resolve it, following the
symlinks the tree itself holds; a path that leaves the workspace, passes through a symlink, or
lands in git's or gitexp's own folders is refused, as Python's tarfile data filter and git's
`verify_path` refuse such members.
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path
from typing import Any

from gitexp.core import yamlio
from gitexp.core.config import DVC_YAML, RESERVED_DIR
from gitexp.dvc.data import DVC_LOCK, is_pointer_file
from gitexp.errors import GitexpError, StateError
from gitexp.store.git import Repo, iter_lines_z
from gitexp.store.snapshot import RESERVED_FILES

_MD5 = re.compile(r"^[0-9a-f]{32}(\.dir)?$")
_MAX_LINK_HOPS = 40  # as the kernel's limit on symlinks in one lookup


def _refuse(label: str, path: str, reason: str) -> StateError:
    return StateError(f"run '{label}' is refused: {path} {reason}; nothing was written")


def tree_entries(repo: Repo, rev: str) -> list[tuple[str, str, str]]:
    """(mode, object id, path) of every file, symlink and submodule in a commit's tree."""
    out = repo.git(["ls-tree", "-r", "-z", "--full-tree", rev]).stdout
    entries = []
    for line in iter_lines_z(out):
        info, _, path = line.partition("\t")
        mode, _, oid = info.split(" ")
        entries.append((mode, oid, path))
    return entries


def resolve(path: str, links: dict[str, str]) -> list[str] | None:
    """The components a relative path really reaches inside the tree, following the tree's
    symlinks; None when it leaves the tree, is absolute, or loops."""
    if path.startswith("/"):
        return None
    pending = path.split("/")
    real: list[str] = []
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not real:
                return None
            real.pop()
            continue
        candidate = "/".join([*real, part])
        if candidate in links:
            hops += 1
            target = links[candidate]
            if hops > _MAX_LINK_HOPS or target.startswith("/"):
                return None
            pending = target.split("/") + pending
            continue
        real.append(part)
    return real


def _forbidden(parts: list[str]) -> str | None:
    for part in parts:
        if part.lower() == ".git" or part.lower().startswith(".git "):
            return "is inside .git"
    if parts and parts[0] == RESERVED_DIR:
        return f"is inside {RESERVED_DIR}/"
    return None


def check_run_tree(repo: Repo, rev: str, label: str, dest: Path | None = None) -> None:
    """Raises StateError (exit 3) naming the run and the path when the tree of `rev` could
    make gitexp, git or DVC write outside `dest` (the workspace or a worktree)."""
    entries = tree_entries(repo, rev)
    links_oids = {path: oid for mode, oid, path in entries if mode == "120000"}
    with repo.batch_reader() as reader:
        targets = reader.read_many(list(links_oids.values()))
        pointer_paths = [p for _, _, p in entries if is_pointer_file(p) or p.endswith(DVC_YAML)]
        pointer_data = reader.read_many([f"{rev}:{p}" for p in pointer_paths])
    links = {
        path: (data or b"").decode("utf-8", "surrogateescape")
        for path, data in zip(links_oids, targets, strict=True)
    }
    for _, _, path in entries:
        parts = path.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise _refuse(label, path, "is not a plain path")
        reason = _forbidden(parts)
        if reason and path not in RESERVED_FILES:
            raise _refuse(label, path, reason)
    for path, target in links.items():
        real = resolve(posixpath.join(posixpath.dirname(path), target), links)
        if real is None:
            raise _refuse(label, path, f"is a symlink that leaves the workspace (-> {target})")
        if _forbidden(real):
            raise _refuse(label, path, f"is a symlink into git's or gitexp's files (-> {target})")
    for path, data in zip(pointer_paths, pointer_data, strict=True):
        if data is not None:
            for out in _declared_outputs(path, data, label):
                _check_output(label, path, out, links, dest)


def _declared_outputs(pointer: str, data: bytes, label: str) -> list[tuple[str, Any]]:
    """(path relative to the root, hash or None) of what a pointer file lets DVC write."""
    try:
        doc = yamlio.load(data, pointer)
    except GitexpError as exc:
        raise StateError(f"run '{label}' is refused: {exc}; nothing was written") from None
    if not isinstance(doc, dict):
        return []
    base = posixpath.dirname(pointer)
    found: list[tuple[str, Any]] = []

    def add(items: Any, wdir: Any) -> None:
        if wdir not in (None, ".") and not isinstance(wdir, str):
            raise _refuse(label, pointer, "has a wdir that is not a path")
        folder = posixpath.join(base, wdir) if isinstance(wdir, str) else base
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict):
                for key, value in item.items():
                    if key == "path":
                        found.append((posixpath.join(folder, str(value)), item.get("md5")))
                    elif isinstance(value, dict):  # dvc.yaml's `- path: {cache: false}`
                        found.append((posixpath.join(folder, str(key)), value.get("md5")))
            elif isinstance(item, str):
                found.append((posixpath.join(folder, item), None))

    if posixpath.basename(pointer) in (DVC_LOCK, DVC_YAML):
        for stage in (doc.get("stages") or {}).values():
            if isinstance(stage, dict):
                wdir = stage.get("wdir")
                for key in ("outs", "metrics", "plots"):
                    add(stage.get(key), wdir)
    else:
        add(doc.get("outs"), doc.get("wdir"))
    return found


def _check_output(
    label: str, pointer: str, out: tuple[str, Any], links: dict[str, str], dest: Path | None
) -> None:
    raw, digest = out
    shown = f"{raw} (in {pointer})"
    if raw.startswith("/") or posixpath.normpath(raw).split("/")[0] == "..":
        raise _refuse(label, shown, "is outside the workspace")
    path = posixpath.normpath(raw)
    parts = path.split("/")
    reason = _forbidden(parts) or ("is inside .dvc/" if parts[0] == ".dvc" else None)
    if reason:
        raise _refuse(label, shown, reason)
    for depth in range(1, len(parts) + 1):
        prefix = "/".join(parts[:depth])
        if prefix in links:
            raise _refuse(label, shown, f"passes through the symlink {prefix}")
        if dest is not None and os.path.islink(dest / prefix):
            raise _refuse(label, shown, f"passes through the symlink {prefix} in the workspace")
    if isinstance(digest, int) and not isinstance(digest, bool):  # an all-digit md5
        digest = f"{digest:032d}"
    if digest is not None and not (isinstance(digest, str) and _MD5.match(digest)):
        raise _refuse(label, shown, "has a hash that is not an md5")
