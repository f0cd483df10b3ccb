"""The before/after snapshot of a repository (RELIABILITY §3.0), used by every test that
checks that gitexp left the user's work alone."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path


def _git(repo: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["GIT_OPTIONAL_LOCKS"] = "0"
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, env=env, check=False)
    return proc.stdout.decode("utf-8", "replace")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# DVC's cache (checked on its own: additions only) and its scratch space.
DVC_OWN = frozenset({".dvc/cache", ".dvc/tmp"})


def dvc_cache(repo: Path) -> dict[str, str]:
    """Cache objects by path, each rehashed: an object must match its name (§3.0 item 6)."""
    objects = {}
    root = repo / ".dvc" / "cache" / "files" / "md5"
    for path in root.rglob("*") if root.exists() else []:
        if path.is_file():
            digest = hashlib.md5(path.read_bytes()).hexdigest()
            name = path.parent.name + path.name.removesuffix(".dir")
            if not path.name.endswith(".dir"):
                assert digest == name, f"corrupt DVC cache object {path}"
            objects[str(path.relative_to(root))] = digest
    return objects


def worktree_state(repo: Path, exclude: frozenset[str] = frozenset()) -> dict[str, str]:
    """Every path but .git/, untracked and ignored included: type, mode and content hash."""
    exclude = exclude | DVC_OWN
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(repo):
        rel_dir = os.path.relpath(dirpath, repo)
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if d != ".git"]
        if not dirnames and not filenames and rel_dir != ".":
            found[rel_dir + "/"] = "empty-dir"
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            full = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if rel in exclude or any(rel.startswith(e.rstrip("/") + "/") for e in exclude):
                continue
            info = os.lstat(full)
            if stat.S_ISLNK(info.st_mode):
                found[rel] = "link:" + os.readlink(full)
            else:
                found[rel] = f"{oct(info.st_mode)}:{_sha(Path(full).read_bytes())}"
    return found


@dataclass(frozen=True)
class Snapshot:
    head: str
    symbolic_head: str
    index_strict: tuple[str, int, int] | None
    index_logical: str
    worktree: dict[str, str]
    refs: dict[str, str]
    stash: str
    reflog_counts: tuple[int, int]
    config: str
    dvc_cache: dict[str, str]


def take(repo: Path, outputs: frozenset[str] = frozenset()) -> Snapshot:
    index = repo / ".git" / "index"
    strict = None
    if index.exists():
        info = index.stat()
        strict = (_sha(index.read_bytes()), info.st_ino, info.st_mtime_ns)
    refs = {}
    for line in _git(repo, "for-each-ref", "--format=%(refname) %(objectname)").splitlines():
        name, oid = line.split(" ")
        refs[name] = oid
    branch = _git(repo, "symbolic-ref", "-q", "HEAD").strip()
    counts = (
        len(_git(repo, "reflog", "show", "HEAD").splitlines()),
        len(_git(repo, "reflog", "show", branch).splitlines()) if branch else 0,
    )
    configs = [repo / ".git" / "config", repo / ".dvc" / "config", repo / ".dvc" / "config.local"]
    return Snapshot(
        head=_git(repo, "rev-parse", "-q", "--verify", "HEAD").strip(),
        symbolic_head=branch,
        index_strict=strict,
        index_logical=_sha(_git(repo, "ls-files", "-s", "-z").encode()),
        worktree=worktree_state(repo, outputs),
        refs=refs,
        stash=_git(repo, "stash", "list"),
        reflog_counts=counts,
        config="".join(_sha(p.read_bytes()) if p.exists() else "-" for p in configs),
        dvc_cache=dvc_cache(repo),
    )


def new_runs(before: Snapshot, after: Snapshot) -> dict[str, str]:
    return {k: v for k, v in after.refs.items() if k not in before.refs}


def assert_untouched(
    repo: Path, before: Snapshot, outputs: frozenset[str] = frozenset(), max_new_runs: int = 1
) -> dict[str, str]:
    """The invariant: all equal but new objects, declared outputs and at most one new
    complete run ref. Returns the new run refs."""
    after = take(repo, outputs)
    assert after.head == before.head
    assert after.symbolic_head == before.symbolic_head
    assert after.index_strict == before.index_strict, "the index file was rewritten"
    assert after.index_logical == before.index_logical
    assert after.worktree == before.worktree
    assert after.stash == before.stash
    assert after.reflog_counts == before.reflog_counts
    assert after.config == before.config
    assert before.dvc_cache.items() <= after.dvc_cache.items(), "DVC cache objects changed"
    changed = {k for k in before.refs if after.refs.get(k) != before.refs[k]}
    assert not changed, f"refs changed: {changed}"
    added = new_runs(before, after)
    assert all(k.startswith("refs/runs/") for k in added), added
    assert len(added) <= max_new_runs, added
    for oid in added.values():
        assert _git(repo, "cat-file", "-t", f"{oid}:.gitexp/run.json").strip() == "blob"
    fsck = subprocess.run(
        ["git", "fsck", "--full", "--strict", "--no-dangling"], cwd=repo, capture_output=True
    )
    assert fsck.returncode == 0, fsck.stderr
    locks = [p for p in (repo / ".git").rglob("*.lock") if p.name != "run.lock"]
    assert not locks, locks
    journal = repo / ".git" / "gitexp" / "journal"
    assert not journal.exists() or not any(journal.iterdir()), "a journal entry is pending"
    return added
