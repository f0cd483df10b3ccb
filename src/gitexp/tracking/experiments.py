"""Experiments, git-native: an experiment is a run-name group (`refs/runs/<id>/<run>`), and
its metadata (display name, tags, creation time) is a small JSON blob that the ref
`refs/gitexp/experiments/<id>` points at, so it travels with the runs and needs no database.

The id is the group: MLflow's name with what a ref cannot hold replaced by '-'. Runs with no
group belong to MLflow's default experiment, id "0", named "Default".
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable

from gitexp.errors import UsageError
from gitexp.store.git import Repo
from gitexp.tracking.entities import Experiment

EXPERIMENTS_PREFIX = "refs/gitexp/experiments/"
DEFAULT_ID = "0"
DEFAULT_NAME = "Default"
_BAD = re.compile(r"[^A-Za-z0-9._-]+")


def experiment_id_for(name: str) -> str:
    """The run-name group for an experiment name ('My exp' -> 'My-exp')."""
    if not isinstance(name, str) or not name.strip():
        raise UsageError("an experiment name must be a non-empty string")
    parts = []
    for part in name.strip().split("/"):
        part = _BAD.sub("-", part).strip("-.")
        part = part.removesuffix(".lock")
        if part:
            parts.append(part)
    slug = "/".join(parts) or "experiment"
    from gitexp.core.names import validate_name

    return validate_name(slug[:80])


def group_of(run_name: str) -> str:
    """The experiment id of a run: its group, or the default experiment."""
    return run_name.rsplit("/", 1)[0] if "/" in run_name else DEFAULT_ID


def artifact_location(repo: Repo, experiment_id: str) -> str:
    return f"gitexp://{repo.root.as_posix()}?experiment={experiment_id}"


def _stored(repo: Repo) -> dict[str, dict]:
    refs = repo.list_refs(EXPERIMENTS_PREFIX)
    if not refs:
        return {}
    with repo.batch_reader() as reader:
        blobs = reader.read_many([oid for _, oid in refs])
    found = {}
    for (ref, _), data in zip(refs, blobs, strict=True):
        try:
            meta = json.loads(data or b"")
        except ValueError:
            continue
        if isinstance(meta, dict):
            found[ref[len(EXPERIMENTS_PREFIX) :]] = meta
    return found


def _entity(repo: Repo, experiment_id: str, meta: dict) -> Experiment:
    tags = meta.get("tags") if isinstance(meta.get("tags"), dict) else {}
    return Experiment(
        experiment_id=experiment_id,
        name=str(meta.get("name") or experiment_id),
        artifact_location=str(
            meta.get("artifact_location") or artifact_location(repo, experiment_id)
        ),
        tags={str(k): str(v) for k, v in tags.items()},
        creation_time=meta.get("creation_time"),
        last_update_time=meta.get("last_update_time", meta.get("creation_time")),
    )


def list_experiments(repo: Repo, run_names: Iterable[str] = ()) -> list[Experiment]:
    """Experiments with stored metadata, plus the groups that runs use, plus Default."""
    stored = _stored(repo)
    ids = {DEFAULT_ID: None, **dict.fromkeys(stored), **dict.fromkeys(map(group_of, run_names))}
    found = []
    for experiment_id in ids:
        meta = stored.get(experiment_id) or {}
        if experiment_id == DEFAULT_ID and not meta:
            meta = {"name": DEFAULT_NAME, "creation_time": 0}
        found.append(_entity(repo, experiment_id, meta))
    return found


def find(
    repo: Repo,
    *,
    name: str | None = None,
    experiment_id: str | None = None,
    run_names: Iterable[str] = (),
) -> Experiment | None:
    for experiment in list_experiments(repo, run_names):
        if experiment_id is not None and experiment.experiment_id == str(experiment_id):
            return experiment
        if name is not None and experiment.name == name:
            return experiment
    return None


def write(repo: Repo, experiment_id: str, meta: dict, old_oid: str | None = None) -> None:
    """Stores the metadata (create-only unless `old_oid` says which version it replaces)."""
    blob = repo.write_blob_data({"meta": (json.dumps(meta, sort_keys=True) + "\n").encode()})
    ref = EXPERIMENTS_PREFIX + experiment_id
    zero = "0" * 40
    repo.git(
        [
            "update-ref",
            "-m",
            "gitexp experiment",
            "--end-of-options",
            ref,
            blob["meta"],
            old_oid or zero,
        ],
        write=True,
    )


def create(
    repo: Repo,
    name: str,
    tags: dict[str, str] | None = None,
    location: str | None = None,
    run_names: Iterable[str] = (),
) -> Experiment:
    """A new experiment; its name must be new."""
    run_names = list(run_names)
    if name == DEFAULT_NAME or find(repo, name=name, run_names=run_names):
        raise UsageError(f"experiment '{name}' already exists")
    experiment_id = experiment_id_for(name)
    taken = {e.experiment_id for e in list_experiments(repo, run_names)}
    base, n = experiment_id, 1
    while experiment_id in taken:
        n += 1
        experiment_id = f"{base}-{n}"
    now = int(time.time() * 1000)
    meta = {"name": name, "tags": dict(tags or {}), "creation_time": now, "last_update_time": now}
    if location:
        meta["artifact_location"] = location
    write(repo, experiment_id, meta)
    return _entity(repo, experiment_id, meta)


def set_tag(repo: Repo, experiment_id: str, key: str, value: str) -> None:
    refs = dict(repo.list_refs(EXPERIMENTS_PREFIX + experiment_id))
    ref = EXPERIMENTS_PREFIX + experiment_id
    meta = _stored(repo).get(experiment_id) or {"name": experiment_id}
    meta.setdefault("tags", {})[key] = str(value)
    meta["last_update_time"] = int(time.time() * 1000)
    write(repo, experiment_id, meta, refs.get(ref))
