"""Sharing runs: refs through a git remote, data through the DVC remote.

Push sends data first and refs after, all refs in one atomic push and never forced, so a
remote never has a run whose data is missing (RELIABILITY rule 9). Pull fetches into a private
namespace and creates local run refs that do not exist yet: a local run is never overwritten.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gitexp.core.names import RUNS_PREFIX
from gitexp.dvc.data import transfer_objects
from gitexp.errors import GitexpError, RemoteError, UsageError
from gitexp.store.git import GitCommandError, Repo
from gitexp.store.snapshot import Target
from gitexp.workflows.workspace import pointer_paths

Warn = Callable[[str], None]
FETCH_PREFIX = "refs/gitexp-fetch/"
_URL = re.compile(r"^(?:file|https?|ssh)://[^\s]+$")
# Never let a remote URL run a program (`ext::sh -c ...`) and check what is fetched.
_SAFE = ["-c", "protocol.ext.allow=never", "-c", "transfer.fsckObjects=true"]


@dataclass(frozen=True)
class PushResult:
    runs: list[str]
    objects: int


@dataclass(frozen=True)
class PullResult:
    created: list[str]
    unchanged: list[str]
    conflicts: list[str]
    objects: int


def check_remote(repo: Repo, remote: str) -> str:
    """A configured remote name, or a file/https/ssh URL; anything else is refused (RP7)."""
    if remote.startswith("-"):
        raise UsageError(f"invalid remote '{remote}': it must not begin with '-'")
    names = repo.text(["remote"]).split()
    if remote in names or _URL.match(remote):
        return remote
    raise UsageError(
        f"unknown remote '{remote}': use a configured remote ({', '.join(names) or 'none yet'}) "
        "or a file://, https:// or ssh:// URL"
    )


def _selected(repo: Repo, names: Sequence[str]) -> dict[str, str]:
    refs = dict(repo.list_refs(RUNS_PREFIX))
    if not names:
        return {ref[len(RUNS_PREFIX) :]: oid for ref, oid in refs.items()}
    chosen = {}
    for name in names:
        if name.startswith("-") or RUNS_PREFIX + name not in refs:
            raise UsageError(f"no run named '{name}': see 'gitexp show' for the runs there are")
        chosen[name] = refs[RUNS_PREFIX + name]
    return chosen


def _data_of(repo: Repo, runs: dict[str, str]) -> set[str]:
    digests: set[str] = set()
    for name, oid in runs.items():
        digests |= set(pointer_paths(repo, Target(label=name, rev=oid, run=name)).values())
    return digests


def push(
    repo: Repo, remote: str, names: Sequence[str], with_data: bool, progress: Warn
) -> PushResult:
    remote = check_remote(repo, remote)
    runs = _selected(repo, names)
    if not runs:
        return PushResult([], 0)
    objects = 0
    if with_data:
        digests = _data_of(repo, runs)
        if digests:
            progress(f"pushing data of {len(runs)} run(s) to the DVC remote")
            try:
                objects = transfer_objects(repo.root, digests, push=True)
            except RemoteError as exc:
                raise RemoteError(f"{exc}; no run was pushed (or push with --no-data)") from None
    refspecs = [f"{RUNS_PREFIX}{n}:{RUNS_PREFIX}{n}" for n in sorted(runs)]
    progress(f"pushing {len(runs)} run(s) to {remote}")
    try:
        repo.git([*_SAFE, "push", "--atomic", "--quiet", "--", remote, *refspecs], write=True)
    except GitCommandError as exc:
        detail = " ".join(exc.stderr.split())[:300]
        raise RemoteError(f"{remote} refused the push: {detail}") from None
    return PushResult(sorted(runs), objects)


def pull(
    repo: Repo, remote: str, names: Sequence[str], with_data: bool, progress: Warn
) -> PullResult:
    remote = check_remote(repo, remote)
    scratch = f"{FETCH_PREFIX}{hashlib.sha1(remote.encode()).hexdigest()[:12]}/"
    wanted = [f"{RUNS_PREFIX}{n}" for n in names] if names else [f"{RUNS_PREFIX}*"]
    refspecs = [f"+{ref}:{scratch}{ref[len(RUNS_PREFIX) :]}" for ref in wanted]
    progress(f"fetching runs from {remote}")
    try:
        repo.git([*_SAFE, "fetch", "--quiet", "--no-tags", "--", remote, *refspecs], write=True)
    except GitCommandError as exc:
        detail = " ".join(exc.stderr.split())[:300]
        raise RemoteError(f"could not fetch runs from {remote}: {detail}") from None
    created: dict[str, str] = {}
    unchanged, conflicts = [], []
    try:
        local = dict(repo.list_refs(RUNS_PREFIX))
        for ref, oid in repo.list_refs(scratch):
            name = ref[len(scratch) :]
            mine = local.get(RUNS_PREFIX + name)
            if mine == oid:
                unchanged.append(name)
            elif mine is not None:
                conflicts.append(name)
            else:
                repo.create_ref(RUNS_PREFIX + name, oid, f"gitexp pull {remote}")
                created[name] = oid
    finally:
        for ref, oid in repo.list_refs(scratch):
            repo.delete_ref(ref, oid)
    objects = 0
    if with_data and created:
        digests = _data_of(repo, created)
        if digests:
            progress(f"fetching data of {len(created)} run(s) from the DVC remote")
            try:
                objects = transfer_objects(repo.root, digests, push=False)
            except GitexpError as exc:
                progress(f"runs pulled, their data not yet: {exc}")
    return PullResult(sorted(created), unchanged, conflicts, objects)
