"""A run's artifacts, read back: MLflow's `runs:/<run_id>/<path>` URIs, listing, and
downloading a file or folder from the run's commit, whether git holds it or DVC does
(fetched from the DVC remote when the local cache lacks it).

An artifact path is relative to the run's artifact root (`dvclive/artifacts` in its commit);
an artifact logged where it was (`log_artifact("model.pkl")`) keeps its own path, which the
run record maps.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitexp.dvc.data import DataEntry, Obj, cache_path, collect, dir_listing, ensure_in_cache
from gitexp.errors import UsageError
from gitexp.store.git import Repo, iter_lines_z
from gitexp.store.snapshot import RECORD_PATH, Target, parse_record, read_pointer_files
from gitexp.tracking.entities import FileInfo

DEFAULT_ROOT = "dvclive/artifacts"


@dataclass(frozen=True)
class RunArtifact:
    """A path inside a run's commit: the run, its commit and record, the path in the tree."""

    run_id: str
    rev: str
    record: dict[str, Any]
    path: str  # relative to the repository root


def split_runs_uri(repo: Repo, uri: str) -> tuple[str, str]:
    """'runs:/exp/run-1/model' -> ('exp/run-1', 'model'): the longest prefix that is a run
    (run names may hold '/'; two runs can never be prefixes of each other)."""
    from gitexp.core.names import RUNS_PREFIX

    body = uri[len("runs:") :].lstrip("/")
    parts = [p for p in body.split("/") if p]
    if not parts:
        raise UsageError(f"invalid URI '{uri}': write runs:/<run_id>/<artifact path>")
    runs = {ref[len(RUNS_PREFIX) :] for ref, _ in repo.list_refs(RUNS_PREFIX)}
    for cut in range(len(parts), 0, -1):
        name = "/".join(parts[:cut])
        if name in runs:
            return name, "/".join(parts[cut:])
    # Not a run name: a git revision (a SHA, a tag) as the first part.
    return parts[0], "/".join(parts[1:])


def record_at(repo: Repo, rev: str) -> dict[str, Any]:
    with repo.batch_reader() as reader:
        data = reader.read(f"{rev}:{RECORD_PATH}")
    return (parse_record(data) if data else None) or {}


def locate(repo: Repo, run_id: str, artifact_path: str) -> RunArtifact:
    """Where an artifact of a run (or revision) is in its commit."""
    from gitexp.store.snapshot import resolve_target

    target = resolve_target(repo, run_id)
    assert target.rev is not None
    record = record_at(repo, target.rev)
    return RunArtifact(run_id, target.rev, record, repo_path(record, artifact_path))


def repo_path(record: dict[str, Any], artifact_path: str) -> str:
    artifact_path = artifact_path.strip("/")
    mapped = record.get("artifacts") if isinstance(record.get("artifacts"), dict) else {}
    first, _, rest = artifact_path.partition("/")
    if first in mapped:
        return f"{mapped[first]}/{rest}".rstrip("/") if rest else str(mapped[first])
    root = str(record.get("artifact_root") or DEFAULT_ROOT).strip("/")
    return f"{root}/{artifact_path}".rstrip("/") if artifact_path else root


def _tracked(repo: Repo, rev: str) -> dict[str, DataEntry]:
    with repo.batch_reader() as reader:
        return collect(read_pointer_files(repo, Target(label=rev, rev=rev), reader))


def _git_files(repo: Repo, rev: str, path: str) -> dict[str, str]:
    """{path: blob id} of the files at or under `path` in the commit."""
    out = repo.git(["ls-tree", "-r", "-z", "--full-tree", rev, "--", path]).stdout
    found = {}
    for line in iter_lines_z(out):
        meta, _, name = line.partition("\t")
        kind, oid = meta.split()[1:3]
        if kind == "blob":
            found[name] = oid
    return found


def _dvc_files(repo: Repo, entries: dict[str, DataEntry], path: str) -> dict[str, Obj]:
    """{path: cache object} of the DVC-stored files at or under `path`, fetching from the
    DVC remote what the local cache lacks."""
    relevant = {
        e.path: e
        for e in entries.values()
        if e.path == path or e.path.startswith(path + "/") or path.startswith(e.path + "/")
    }
    if not relevant:
        return {}
    ensure_in_cache(repo.root, relevant)
    files = {}
    for entry in relevant.values():
        if entry.hash.endswith(".dir"):
            for rel, md5 in (dir_listing(repo.root, entry.obj) or {}).items():
                files[f"{entry.path}/{rel}"] = Obj(md5, entry.obj.legacy)
        else:
            files[entry.path] = entry.obj
    return {p: h for p, h in files.items() if p == path or p.startswith(path + "/")}


def download(repo: Repo, artifact: RunArtifact, dest: Path) -> Path:
    """Writes the artifact (a file, or a folder's files) under `dest`; returns the local path
    of the artifact itself."""
    git_files = _git_files(repo, artifact.rev, artifact.path)
    dvc_files = _dvc_files(repo, _tracked(repo, artifact.rev), artifact.path)
    if not git_files and not dvc_files:
        raise UsageError(
            f"run '{artifact.run_id}' has no artifact at '{artifact.path}' "
            "(list them with MlflowClient().list_artifacts(run_id))"
        )
    base = artifact.path.rsplit("/", 1)[0] if "/" in artifact.path else ""

    root = dest.resolve()

    def local(path: str) -> Path:
        rel = path[len(base) + 1 :] if base else path
        target = (dest / rel).resolve()
        # A run from a remote is untrusted: a listing naming '../x' never writes outside.
        if root not in target.parents:
            raise UsageError(
                f"run '{artifact.run_id}' names an artifact outside its folder: {path}"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    if git_files:
        with repo.batch_reader() as reader:
            blobs = reader.read_many(list(git_files.values()))
        for path, data in zip(git_files, blobs, strict=True):
            local(path).write_bytes(data or b"")
    for path, obj in dvc_files.items():
        shutil.copyfile(cache_path(repo.root, obj), local(path))
    name = artifact.path.rsplit("/", 1)[-1]
    return dest / name


def list_artifacts(repo: Repo, run_id: str, path: str | None = None) -> list[FileInfo]:
    """The files and folders directly under an artifact path, as MLflow lists them."""
    artifact = locate(repo, run_id, path or "")
    git_files = _git_files(repo, artifact.rev, artifact.path)
    entries = _tracked(repo, artifact.rev)
    sizes: dict[str, int | None] = {}
    for file_path, oid in git_files.items():
        sizes[file_path] = None
        del oid
    for entry in entries.values():
        if entry.path == artifact.path or entry.path.startswith(artifact.path + "/"):
            if entry.hash.endswith(".dir"):
                listing = dir_listing(repo.root, entry.obj)
                if listing is None:  # not in the local cache: show the folder itself
                    sizes[entry.path + "/"] = entry.size
                    continue
                for rel in listing:
                    sizes[f"{entry.path}/{rel}"] = None
            else:
                sizes[entry.path] = entry.size
    found: dict[str, FileInfo] = {}
    prefix = artifact.path + "/" if artifact.path else ""
    shown = (path or "").strip("/")
    for file_path, size in sizes.items():
        if file_path.endswith((".dvc", "/.gitignore")) or not file_path.startswith(prefix):
            continue
        rel = file_path[len(prefix) :].rstrip("/")
        head, _, rest = rel.partition("/")
        key = f"{shown}/{head}".strip("/")
        if rest or file_path.endswith("/"):
            found.setdefault(key, FileInfo(key, True, None))
        else:
            found[key] = FileInfo(key, False, size)
    if not artifact.path.startswith(str(artifact.record.get("artifact_root") or DEFAULT_ROOT)):
        return sorted(found.values(), key=lambda f: f.path)
    if not shown:  # artifacts logged where they were, beside the artifact root
        for name in artifact.record.get("artifacts") or {}:
            if name:
                found.setdefault(name, FileInfo(name, False, None))
    return sorted(found.values(), key=lambda f: f.path)


def download_artifacts(repo: Repo, run_id: str, path: str = "", dst_path: str | None = None) -> str:
    import tempfile

    dest = Path(dst_path) if dst_path else Path(tempfile.mkdtemp(prefix="gitexp-artifacts-"))
    dest.mkdir(parents=True, exist_ok=True)
    return str(download(repo, locate(repo, run_id, path), dest))
