"""Building a run's tree: the workspace as the command left it, its outputs in DVC's cache
with pointer files in the tree, and the run record and log at `.gitexp/`.

All of it goes through a temporary index; the workspace is only read.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitexp.core import yamlio
from gitexp.core.config import RESERVED_DIR
from gitexp.dvc.data import (
    Committed,
    DataEntry,
    collect,
    commit_outputs,
    entry_of,
    is_dvc_file,
    pointer_text,
)
from gitexp.errors import UsageError
from gitexp.store.git import Repo, TempIndex
from gitexp.store.snapshot import ENVIRONMENT_PATH, LOG_PATH, RECORD_PATH
from gitexp.workflows.execute import LogCapture

Phase = Callable[[str], None]
Warn = Callable[[str], None]


@dataclass(frozen=True)
class TreeResult:
    tree: str
    data: dict[str, dict[str, Any]]  # what the record says of the run's data


def normalise_out(root: Path, out: str) -> str:
    """An output path relative to the repository root, refused if it leaves it."""
    full = (Path.cwd() / out).resolve() if not os.path.isabs(out) else Path(out).resolve()
    try:
        rel = full.relative_to(root.resolve()).as_posix()
    except ValueError:
        raise UsageError(f"output '{out}' is outside the repository") from None
    if rel in (".", "") or rel.split("/")[0] in (".git", ".dvc", RESERVED_DIR):
        raise UsageError(f"output '{out}' cannot be tracked as an artifact")
    return rel


# Untracked files that look like keys or credentials are never put in a run (row G8).
_SECRET_NAMES = re.compile(
    r"(^|/)(\.env(\..*)?|\.netrc|\.pgpass|id_(rsa|dsa|ecdsa|ed25519)|.*\.(pem|key|p12|pfx))$"
)
_SECRET_CONTENT = (
    b'"private_key"',
    b"-----BEGIN RSA PRIVATE KEY-----",
    b"-----BEGIN OPENSSH PRIVATE KEY-----",
    b"-----BEGIN PRIVATE KEY-----",
)


def looks_secret(path: Path, rel: str) -> bool:
    if _SECRET_NAMES.search(rel):
        return True
    try:
        if path.stat().st_size > 1_000_000:
            return False
        head = path.read_bytes()
    except OSError:
        return False
    return any(marker in head for marker in _SECRET_CONTENT)


@dataclass(frozen=True)
class Screened:
    secrets: list[str]  # untracked files that look like keys: left out (row G8)
    large: list[tuple[str, int]]  # files over the size limit for git, with their sizes


def screen_files(repo: Repo, index: TempIndex, excludes: Sequence[str], max_bytes: int) -> Screened:
    """Looks at every file git would store, before any blob is written: secret-looking
    untracked files and files too large for git (row G7) are set aside."""
    secrets, large = [], []
    for rel, untracked in index.changed_files(excludes).items():
        full = repo.root / rel
        if untracked and not full.is_symlink() and looks_secret(full, rel):
            secrets.append(rel)
            continue
        try:
            size = os.lstat(full).st_size
        except OSError:
            continue
        if size > max_bytes and not full.is_symlink():
            large.append((rel, size))
    return Screened(secrets, large)


def snapshot_inputs(repo: Repo, max_bytes: int) -> str:
    """The tree of the workspace as the command starts (after the overrides): what
    `reproduce` starts from. Large and secret-looking files are left out, as in the run."""
    excludes = [RESERVED_DIR, *GENERATED_DIRS]
    with repo.temp_index() as index:
        screened = screen_files(repo, index, excludes, max_bytes)
        index.add_all([*excludes, *screened.secrets, *(rel for rel, _ in screened.large)])
        return index.write_tree()


BIG_ARTIFACT_BYTES = 1_000_000
# The record's key for the environment it shares with other runs, until build_tree moves it
# to its own file (`.gitexp/environment.json`).
SHARED_ENVIRONMENT = "_environment"
# Folders DVC generates for viewing (`dvc plots show`): never part of a run.
GENERATED_DIRS = ("dvc_plots",)


def _is_binary_or_large(path: Path) -> bool:
    try:
        if path.stat().st_size > BIG_ARTIFACT_BYTES:
            return True
        with open(path, "rb") as fh:
            return b"\0" in fh.read(8192)
    except OSError:
        return False


def artifact_outs(repo: Repo, paths: Sequence[str], warn: Warn) -> list[str]:
    """The logged artifacts that DVC should store: binary or large files, folders holding
    any, and artifacts git ignores. Small text artifacts stay in git."""
    outs = []
    for path in paths:
        rel = normalise_out(repo.root, path)
        full = repo.root / rel
        files = [full] if full.is_file() else [p for p in full.rglob("*") if p.is_file()]
        ignored = repo.git(["check-ignore", "-q", "--", rel], check=False).returncode == 0
        if ignored or any(_is_binary_or_large(f) for f in files):
            outs.append(rel)
    if outs and not (repo.root / ".dvc").is_dir():
        warn(f"not stored: {', '.join(outs)} (binary, large or ignored artifacts need DVC: "
             "run 'gitexp init')")  # fmt: skip
        return []
    return outs


def _workspace_pointers(repo: Repo, index: TempIndex) -> dict[str, bytes]:
    out = repo.git(
        [
            "ls-files",
            "-z",
            "-c",
            "-o",
            "--exclude-standard",
            "--",
            "*.dvc",
            "*dvc.lock",
            "*dvc.yaml",
        ],
        env=index.env,
    ).stdout
    pointers = {}
    for rel in {p for p in out.decode("utf-8", "surrogateescape").split("\0") if p}:
        if is_dvc_file(rel) and (repo.root / rel).is_file():
            pointers[rel] = (repo.root / rel).read_bytes()
    return pointers


def _updated_pointer(original: bytes, entry: Committed) -> bytes:
    """A `.dvc` file with one output's hash, size and file count brought up to date."""
    import yaml

    doc = yamlio.load(original, entry.path + ".dvc")
    for out in doc.get("outs", []):
        if posixpath.basename(str(out.get("path"))) == posixpath.basename(entry.path):
            out["md5"] = entry.hash
            out["size"] = entry.size
            out.pop("nfiles", None)
            if entry.nfiles is not None:
                out["nfiles"] = entry.nfiles
            out.setdefault("hash", "md5")
    return yaml.safe_dump(doc, sort_keys=False).encode()


def _gitignore_with(repo: Repo, rel: str) -> tuple[str, bytes] | None:
    """The `.gitignore` beside a new output, with the output added (None if already there)."""
    directory, name = posixpath.split(rel)
    path = posixpath.join(directory, ".gitignore") if directory else ".gitignore"
    full = repo.root / path
    text = full.read_text() if full.is_file() else ""
    if f"/{name}" in text.splitlines():
        return None
    sep = "" if not text or text.endswith("\n") else "\n"
    return path, f"{text}{sep}/{name}\n".encode()


def data_blobs(
    repo: Repo, index: TempIndex, outs: Sequence[str], phase: Phase
) -> tuple[dict[str, bytes], dict[str, DataEntry]]:
    """Commits outputs and changed DVC-tracked data to DVC's cache. Returns the files to put in
    the run's tree (pointers, .gitignore entries) and every tracked path with its hash."""
    pointers = _workspace_pointers(repo, index)
    tracked = collect(pointers)
    dvc_files = {e.path: e for e in tracked.values() if e.pointer.endswith(".dvc")}
    present = [p for p in dvc_files if os.path.lexists(repo.root / p) and p not in outs]
    files: dict[str, bytes] = {}
    phase("dvc-commit")
    if not outs and not present:
        return files, tracked
    for entry in commit_outputs(repo.root, [*outs, *present]):
        known = dvc_files.get(entry.path)
        if known is not None:
            if known.hash != entry.hash:  # changed by the command, as `dvc commit` records it
                files[known.pointer] = _updated_pointer(pointers[known.pointer], entry)
            pointer = known.pointer
        else:
            pointer = f"{entry.path}.dvc"
            files[pointer] = pointer_text(entry).encode()
            ignore = _gitignore_with(repo, entry.path)
            if ignore:
                files[ignore[0]] = ignore[1]
        tracked[entry.path] = DataEntry(entry.path, entry.hash, entry.size, entry.nfiles, pointer)
    return files, tracked


def build_tree(
    repo: Repo,
    record: dict[str, Any],
    log: LogCapture,
    outs: Sequence[str],
    declared: Sequence[str],
    max_file_bytes: int,
    phase: Phase,
    warn: Warn,
) -> TreeResult:
    """The run's tree; `record` gets its `data` (and `skipped`) section here, before it is
    written. A finished command is always recorded (issue: finished runs thrown away): a
    file too large for git goes to DVC's cache when the repository has DVC, as `--out`
    would store it, and is left out with a warning otherwise. `declared` params and metrics
    files go in even when git ignores them, so every view of the run reads the same files."""
    excludes = [RESERVED_DIR, *GENERATED_DIRS, *outs]
    with repo.temp_index() as index:
        screened = screen_files(repo, index, excludes, max_file_bytes)
        for rel in screened.secrets:
            warn(f"left {rel} out of the run: it looks like a secret (add it to .gitignore)")
        large = [rel for rel, _ in screened.large]
        has_dvc = (repo.root / ".dvc").is_dir()
        for rel, size in screened.large:
            limit = f"{size / 1e6:.0f} MB, over the {max_file_bytes / 1e6:g} MB limit for git"
            if has_dvc:
                warn(f"stored {rel} in DVC's cache ({limit}; its pointer is in the run)")
            else:
                warn(f"left {rel} out of the run ({limit}; 'gitexp init' sets up DVC for it)")
        if large and not has_dvc:
            record["skipped"] = large
        outs = [*outs, *large] if has_dvc else list(outs)
        excludes += [*screened.secrets, *large]
        files, tracked = data_blobs(repo, index, outs, phase)
        data = {path: entry.as_json() for path, entry in sorted(tracked.items())}
        record["data"] = data
        environment = record.pop(SHARED_ENVIRONMENT, None)
        if environment is not None:  # what repeats across runs: one blob they all share
            files[ENVIRONMENT_PATH] = environment
        files[RECORD_PATH] = (json.dumps(record, indent=2) + "\n").encode()
        files[LOG_PATH] = log.getvalue()
        blobs = repo.write_blob_data(files)
        index.add_all(excludes)
        _add_declared(repo, index, declared, tracked, excludes, max_file_bytes)
        if outs:  # an output that git tracked before is now DVC's: only its pointer stays
            repo.git(
                ["rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", *outs],
                env=index.env,
                write=True,
            )
        index.add_blobs(blobs)
        phase("index-built")
        tree = index.write_tree()
        phase("tree-written")
    return TreeResult(tree=tree, data=data)


def _add_declared(
    repo: Repo,
    index: TempIndex,
    declared: Sequence[str],
    tracked: dict[str, DataEntry],
    excludes: Sequence[str],
    max_bytes: int,
) -> None:
    """Params and metrics files that git ignores still belong to the run (not those DVC
    keeps in its cache: their pointers are in the run)."""
    wanted = []
    for rel in dict.fromkeys(declared):
        full = repo.root / rel
        if rel in excludes or entry_of(tracked, rel) is not None or full.is_symlink():
            continue
        if full.is_file() and full.stat().st_size <= max_bytes:
            wanted.append(rel)
    if wanted:
        repo.git(["add", "-f", "--", *wanted], env=index.env, write=True)
