"""`log_input`: what a run records of a dataset it used. A path is described by its DVC hash
when DVC tracks it (the same hash `diff` compares), else by the md5 of its content; an
MLflow dataset object by its own name, digest and source."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from gitexp.errors import UsageError


def _md5(path: Path) -> str:
    if path.is_file():
        digest = hashlib.md5()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
    listing = hashlib.md5()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        listing.update(f"{item.relative_to(path).as_posix()}\0{_md5(item)}\n".encode())
    return listing.hexdigest() + ".dir"


def _dvc_hash(repo_root: Path, rel: str) -> str | None:
    """The hash a `.dvc` pointer (or dvc.lock) in the workspace records for the path."""
    from gitexp.dvc.data import collect, is_pointer_file

    pointers = {}
    for candidate in [f"{rel}.dvc", "dvc.lock"]:
        full = repo_root / candidate
        if is_pointer_file(candidate) and full.is_file():
            pointers[candidate] = full.read_bytes()
    entry = collect(pointers).get(rel)
    return entry.hash if entry else None


def describe(dataset: Any, context_path: str | None = None) -> dict[str, Any]:
    del context_path
    if isinstance(dataset, (str, os.PathLike)):
        from gitexp.store.git import Repo
        from gitexp.tracking import context

        path = Path(dataset)
        if not path.exists():
            raise UsageError(f"dataset '{dataset}' does not exist")
        root = Repo.discover(context.tracking_path()).root.resolve()
        try:
            rel = path.resolve().relative_to(root).as_posix()
        except ValueError:
            rel = None
        tracked = _dvc_hash(root, rel) if rel else None
        return {
            "name": path.name,
            "path": rel or str(path.resolve()),
            "digest": tracked or _md5(path),
            "source_type": "dvc" if tracked else "local",
            "source": rel or str(path.resolve()),
        }
    name = getattr(dataset, "name", None)
    digest = getattr(dataset, "digest", None)
    if name is None or digest is None:
        raise UsageError(
            "log_input takes a path or an MLflow dataset (an object with name and digest), "
            f"not {type(dataset).__name__}"
        )
    source = getattr(dataset, "source", "")
    source_text = source.to_json() if hasattr(source, "to_json") else str(source)
    return {
        "name": str(name),
        "digest": str(digest),
        "source_type": str(getattr(source, "_get_source_type", lambda: "")() or "external"),
        "source": source_text,
    }
