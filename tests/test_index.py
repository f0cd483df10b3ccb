"""The run index (a cache under the git directory, never the source of truth) and records
that stay small: every change to the runs is seen, a damaged or foreign index is rebuilt,
concurrent updates both succeed, and the results equal a read without the index."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

from conftest import GITEXP, git, run_gitexp, show_json, train

INDEX = Path(".git") / "gitexp" / "runs.sqlite"


def without_index(repo: Path) -> list[dict]:
    """`show --json` reading the records themselves (GITEXP_NO_INDEX=1)."""
    proc = run_gitexp(repo, "show", "--json", env={"GITEXP_NO_INDEX": "1"})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_every_change_to_the_runs_is_seen(repo: Path, gitexp) -> None:
    for name in ("a", "b"):
        assert gitexp(*train("-n", name)).returncode == 0
    assert [r["name"] for r in show_json(gitexp)] == ["b", "a"]
    assert (repo / INDEX).exists()
    assert gitexp(*train("-n", "c")).returncode == 0  # recorded
    assert gitexp("rename", "a", "a2").returncode == 0  # renamed
    assert gitexp("remove", "b").returncode == 0  # removed
    assert [r["name"] for r in show_json(gitexp)] == ["c", "a2"]
    # rewritten by another process: the ref moved to another commit behind gitexp's back
    other = git(repo, "rev-parse", "refs/runs/c")
    git(repo, "update-ref", "refs/runs/a2", other)
    listed = {r["name"]: r["rev"] for r in show_json(gitexp)}
    assert listed == {"c": other, "a2": other}
    git(repo, "pack-refs", "--all")  # packed: still the same answer
    assert {r["name"]: r["rev"] for r in show_json(gitexp)} == listed
    assert show_json(gitexp, "--limit", "1")[0]["name"] in listed


def test_pulled_runs_are_seen(repo: Path, gitexp, tmp_path: Path) -> None:
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "-q", "origin", "main")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    assert run_gitexp(clone, "show", "--json").stdout.strip() == "[]"  # index made, empty
    assert gitexp(*train("-n", "far")).returncode == 0
    assert gitexp("push", "--no-data").returncode == 0
    assert run_gitexp(clone, "pull", "--no-data").returncode == 0
    assert [r["name"] for r in json.loads(run_gitexp(clone, "show", "--json").stdout)] == ["far"]


def test_damaged_or_foreign_index_is_rebuilt(repo: Path, gitexp) -> None:
    assert gitexp(*train("-n", "a")).returncode == 0
    first = show_json(gitexp)
    (repo / INDEX).write_bytes(b"this is not a database")
    assert show_json(gitexp) == first
    db = sqlite3.connect(repo / INDEX)
    db.execute("UPDATE meta SET value = '0.0.1' WHERE key = 'gitexp'")
    db.execute("UPDATE runs SET summary = '{}'")  # what an old version wrote: not trusted
    db.commit()
    db.close()
    assert show_json(gitexp) == first
    (repo / INDEX).unlink()
    assert show_json(gitexp) == first  # deleting it loses nothing


def test_results_equal_a_read_without_the_index(repo: Path, gitexp) -> None:
    assert gitexp(*train("-n", "plain", "--tag", "k=v", "-m", "hello")).returncode == 0
    assert gitexp("run", "-n", "failing", "--", "false").returncode == 1
    assert gitexp("tag", "plain", "stage=prod").returncode == 0
    assert gitexp("note", "failing", "flaky disk").returncode == 0
    indexed = show_json(gitexp)
    assert indexed == without_index(repo)
    assert {r["name"]: r.get("note") for r in indexed} == {"failing": "flaky disk", "plain": None}
    assert gitexp("show").stdout == gitexp("show").stdout  # and stable


def test_two_processes_updating_at_once_both_succeed(repo: Path, gitexp) -> None:
    for i in range(30):
        git(repo, "update-ref", f"refs/runs/r{i}", "HEAD")  # runs without records
    procs = [subprocess.Popen([*GITEXP, "show", "--json"], cwd=repo, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]  # fmt: skip
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    lists = [json.loads(out) for out, _ in outputs]
    assert all(len(listed) == 30 for listed in lists)
    assert all(r["status"] == "unknown" for r in lists[0])


def test_records_stay_small_and_share_their_environment(repo: Path, gitexp) -> None:
    for name in ("a", "b"):
        assert gitexp(*train("-n", name)).returncode == 0
    record = git(repo, "show", "refs/runs/a:.gitexp/run.json")
    assert len(record) < 1500 and "packages" not in json.loads(record)
    blobs = {git(repo, "rev-parse", f"refs/runs/{n}:.gitexp/environment.json") for n in "ab"}
    assert len(blobs) == 1  # one object for identical environments
    environment = json.loads(git(repo, "show", "refs/runs/a:.gitexp/environment.json"))
    assert "pyyaml" in environment["packages"]
    assert environment["python"] == json.loads(record)["python"]
    assert gitexp("diff", "--env", "a", "b").stdout.startswith("no differences")


def test_old_records_with_the_environment_inline_stay_readable(repo: Path, gitexp) -> None:
    assert gitexp(*train("-n", "new")).returncode == 0
    record = json.loads(git(repo, "show", "refs/runs/new:.gitexp/run.json"))
    old = {**record, "version": 1, "packages": {"numpy": "1.0"}, "cpu": {"count": 1}}
    blob = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"],
        cwd=repo,
        check=True,
        input=json.dumps(old).encode(),
        capture_output=True,
    ).stdout.decode()
    index = repo / ".git" / "old-index"
    env = {"GIT_INDEX_FILE": str(index)}
    subprocess.run(["git", "read-tree", "HEAD"], cwd=repo, env=env, check=True)
    entry = f"100644,{blob.strip()},.gitexp/run.json"
    subprocess.run(["git", "update-index", "--add", "--cacheinfo", entry], cwd=repo, env=env,
                   check=True)  # fmt: skip
    tree = subprocess.run(["git", "write-tree"], cwd=repo, env=env, check=True,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    commit = git(repo, "commit-tree", tree, "-p", "HEAD", "-m", "old run")
    git(repo, "update-ref", "refs/runs/old", commit)
    (listed,) = show_json(gitexp, "old")
    assert listed["status"] == "success" and listed["metrics"] == record["metrics"]
    proc = gitexp("diff", "--env", "old", "new")
    assert "package numpy" in proc.stdout and proc.returncode == 0
