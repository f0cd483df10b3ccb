"""The model registry on git tags: GTO's format byte for byte (the real `gto` reads what
gitexp writes, and the reverse), GTO's stage semantics, `.gto` stages, MLflow's numbers and
aliases, speed at 10,000 tags, hostile names, and tags travelling with push and pull."""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import git, make_repo, run_gitexp

GTO = str(Path(sys.executable).parent / "gto")


def gto(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # dulwich (under gto) reads GIT_COMMITTER_DATE as seconds only: the tests' ISO dates go.
    env = {
        k: v for k, v in os.environ.items() if k not in ("GIT_AUTHOR_DATE", "GIT_COMMITTER_DATE")
    }
    proc = subprocess.run([GTO, *args], cwd=repo, capture_output=True, text=True, timeout=120,
                          env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc


def ok(repo: Path, *args: str) -> str:
    proc = run_gitexp(repo, *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def tag_body(repo: Path, tag: str) -> str:
    """A tag object with its tagger time blanked (the only byte that depends on the clock)."""
    body = git(repo, "cat-file", "tag", tag)
    return re.sub(r"^(tagger .*>) \d+ \+0000$", r"\1 T +0000", body, flags=re.M)


@pytest.fixture
def runs(repo: Path) -> list[str]:
    """Two runs to register (their commits differ)."""
    for n in ("1", "2"):
        (repo / "note.txt").write_text(n)
        assert run_gitexp(repo, "run", "-n", f"r{n}", "--", "true").returncode == 0
    return [git(repo, "rev-parse", f"refs/runs/r{n}") for n in ("1", "2")]


def test_tags_are_gtos_byte_for_byte(repo: Path, tmp_path: Path) -> None:
    # Fixed commit dates (conftest) make both repositories' commits identical.
    theirs = make_repo(tmp_path / "theirs")
    assert git(theirs, "rev-parse", "HEAD") == git(repo, "rev-parse", "HEAD")
    gto(theirs, "register", "churn", "HEAD")
    gto(theirs, "assign", "churn", "--version", "v0.0.1", "--stage", "prod")
    gto(theirs, "deprecate", "churn", "v0.0.1", "prod")  # gto's unassign
    gto(theirs, "deprecate", "churn", "v0.0.1")  # and deregister
    gto(theirs, "deprecate", "churn")
    ok(repo, "model", "register", "churn", "HEAD")
    ok(repo, "model", "assign", "churn", "prod")
    ok(repo, "model", "unassign", "churn", "prod")
    ok(repo, "model", "deregister", "churn", "v0.0.1")
    ok(repo, "model", "deprecate", "churn")
    names = git(theirs, "tag", "-l").split()
    assert names == ["churn#prod!#2", "churn#prod#1", "churn@deprecated", "churn@v0.0.1",
                     "churn@v0.0.1!"]  # fmt: skip
    assert git(repo, "tag", "-l").split() == names
    for name in names:
        assert tag_body(repo, name) == tag_body(theirs, name), name


def test_gto_reads_what_gitexp_writes(repo: Path, runs: list[str]) -> None:
    ok(repo, "model", "register", "iris", "r1")
    ok(repo, "model", "assign", "iris", "prod")
    ok(repo, "model", "register", "iris", "r2")
    ok(repo, "model", "assign", "iris", "prod", "--version", "v0.0.2")
    ok(repo, "model", "assign", "iris", "staging", "r1")
    shown = json.loads(gto(repo, "show", "--json").stdout)
    assert shown["iris"]["version"] == "v0.0.2"
    assert shown["iris"]["stage"] == {"prod": "v0.0.2", "staging": "v0.0.1"}
    versions = json.loads(gto(repo, "show", "iris", "--json").stdout)
    assert {v["version"]: v["commit_hexsha"] for v in versions} == {"v0.0.1": runs[0],
                                                                    "v0.0.2": runs[1]}  # fmt: skip
    times = [int(line) for line in git(repo, "for-each-ref", "--format=%(taggerdate:unix)",
                                       "--sort=taggerdate", "refs/tags/").split()]  # fmt: skip
    assert times == sorted(set(times)), "tagger times must strictly increase"
    # Unassigning v0.0.2 gives prod back to v0.0.1, which still holds it (GTO's rule).
    ok(repo, "model", "unassign", "iris", "prod")
    assert json.loads(gto(repo, "show", "--json").stdout)["iris"]["stage"]["prod"] == "v0.0.1"
    listed = json.loads(ok(repo, "model", "list", "--json"))
    assert listed == [{"name": "iris", "latest": "v0.0.2", "versions": 2, "deprecated": False,
                       "stages": {"prod": "v0.0.1", "staging": "v0.0.1"}}]  # fmt: skip


def test_gitexp_reads_what_gto_writes_and_loads_by_number_and_alias(repo: Path) -> None:
    pytest.importorskip("sklearn")
    code = """
import gitexp as mlflow, gitexp.sklearn
from sklearn.linear_model import LinearRegression
for name, coef in (("a", 1.0), ("b", 2.0)):
    with mlflow.start_run(run_name=name):
        mlflow.sklearn.log_model(LinearRegression().fit([[0], [1]], [0, coef]), "model")
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    gto(repo, "register", "reg", "refs/runs/a")
    gto(repo, "register", "reg", "refs/runs/b")
    gto(repo, "assign", "reg", "--version", "v0.0.1", "--stage", "champion")
    shown = json.loads(ok(repo, "model", "show", "reg", "--json"))
    assert [(v["version"], v["number"], v["run"], v["stages"]) for v in shown] == [
        ("v0.0.2", 2, "b", None), ("v0.0.1", 1, "a", "champion")]  # fmt: skip
    code = """
import gitexp as mlflow, gitexp.sklearn
c = mlflow.MlflowClient()
print(round(mlflow.sklearn.load_model("models:/reg/2").coef_[0], 6),
      round(mlflow.pyfunc.load_model("models:/reg@champion").predict([[1]])[0], 6),
      round(mlflow.sklearn.load_model("models:/reg/latest").coef_[0], 6),
      c.get_model_version_by_alias("reg", "champion").version,
      [v.version for v in c.search_model_versions("run_id = 'b'")])
c.set_registered_model_alias("reg", "champion", 2)
print(c.get_registered_model("reg").aliases)
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.splitlines()
    assert first == "2.0 1.0 2.0 1 ['2']"
    assert second == "{'champion': '2'}"  # the alias moved: v0.0.1 was unassigned
    assert json.loads(gto(repo, "show", "--json").stdout)["reg"]["stage"] == {"champion": "v0.0.2"}


def test_gto_file_stages_are_honoured_and_bad_input_writes_nothing(
    repo: Path, runs: list[str]
) -> None:
    (repo / ".gto").write_text("stages: [dev, prod]\n")
    ok(repo, "model", "register", "m", "r1")
    before = git(repo, "tag", "-l")
    for args, message in [
        (("assign", "m", "staging"), "not in .gto's stages: dev, prod"),
        (("register", "--upload-pack=x", "r1"), "No such option"),
        (("register", "m name", "r1"), "invalid model name"),
        (("register", "../m", "r1"), "invalid model name"),
        (("register", "m", "r2", "--version", "1.0"), "is not valid"),
        (("register", "m", "r1"), "already has version v0.0.1"),
        (("register", "m", "--", "-r1"), "must not begin with '-'"),
        (("assign", "m", "bad#stage"), "invalid stage"),
        (("show", "nothing"), "no model named 'nothing'"),
    ]:  # fmt: skip
        proc = run_gitexp(repo, "model", *args)
        assert proc.returncode in (2, 3), (args, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert git(repo, "tag", "-l") == before
    assert "assigned stage 'dev'" in ok(repo, "model", "assign", "m", "dev")


def test_resolving_a_stage_among_10000_tags_is_fast(repo: Path) -> None:
    from gitexp.store.git import Repo
    from gitexp.tracking import registry

    stream, count = [], 5000
    for i in range(count):  # 5,000 versions on 5,000 commits, each assigned to prod
        parent = "from refs/heads/main\n" if i == 0 else ""
        stream.append(f"commit refs/heads/models\nmark :{i + 1}\ncommitter T <t@x> {1700000000 + i}"
                      f" +0000\ndata 1\nm{parent}\n")  # fmt: skip
    for i in range(count):
        when = 1700000000 + 2 * i
        stream.append(f"tag m@v0.{i // 100}.{i % 100}\nfrom :{i + 1}\ntagger T <t@x> {when} +0000"
                      f"\ndata 5\nregis\ntag m#prod#{i + 1}\nfrom :{i + 1}\ntagger T <t@x> "
                      f"{when + 1} +0000\ndata 5\nassig\n")  # fmt: skip
    subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, check=True,
                   input="".join(stream).encode())  # fmt: skip
    git(repo, "pack-refs", "--all")  # as `git gc` and a clone leave them
    handle = Repo.discover(repo)
    timings = []
    for _ in range(3):  # CPU time, gitexp's and git's: wall time on a loaded CI box is noise
        start, children = time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
        _, found = registry.resolve(handle, "m", "@prod")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        git_cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
        timings.append(time.process_time() - start + git_cpu)
    assert found.version == "v0.49.99"
    assert min(timings) < 0.1, timings
    assert registry.load(handle, "m").stages()["prod"].version == "v0.49.99"  # the full rule


def test_registry_tags_travel_with_push_and_pull(repo: Path, runs: list[str],
                                                 tmp_path: Path) -> None:  # fmt: skip
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    ok(repo, "model", "register", "m", "r1")
    ok(repo, "model", "assign", "m", "prod")
    ok(repo, "push", "--no-data")
    assert git(remote, "tag", "-l").split() == ["m#prod#1", "m@v0.0.1"]
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--no-tags", str(remote), str(clone))
    ok(clone, "pull", "--no-data")
    assert git(clone, "tag", "-l").split() == ["m#prod#1", "m@v0.0.1"]
    assert json.loads(ok(clone, "model", "show", "m", "--json"))[0]["run"] == "r1"
