"""Real DVC pipelines (issue: checkout, apply, reproduce, push, show, diff and report give
DVC's answers): each test compares gitexp with DVC's own command on the same repository.
The project is built once by tests/pipeline.py with real DVC and copied for each test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pipeline
from conftest import git, run_gitexp

DVC_UP_TO_DATE = "Data and pipelines are up to date."


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("pipeline-home")
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Test User\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n"
    )
    env = {**os.environ, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "DVC_NO_ANALYTICS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # fmt: skip
    for name in [n for n in env if n.startswith("GITEXP_")]:
        del env[name]
    return pipeline.build(tmp_path_factory.mktemp("pipeline-src") / "project", env)


@pytest.fixture
def project(built: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    shutil.copytree(built, copy, symlinks=True)
    return copy


def dvc(repo: Path, *args: str) -> str:
    proc = subprocess.run(["dvc", *args], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def gitexp_ok(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = run_gitexp(repo, *args)
    assert proc.returncode == 0, proc.stderr
    return proc


def with_remote(project: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A bare git remote and a DVC remote directory, both configured and committed."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    dvc(project, "remote", "add", "-d", "store", str(tmp_path / "store"))
    git(project, "add", ".dvc/config")
    git(project, "commit", "-q", "-m", "remote")
    git(project, "remote", "add", "origin", str(origin))
    git(project, "push", "-q", "origin", "HEAD:main")
    return origin, tmp_path / "store"


# --- 1, 4, 5: checkout and apply; DVC 2 lock entries; stale lock entries -----------------------


def test_pipeline_run_travels_and_checks_out_in_a_fresh_clone(project: Path, tmp_path) -> None:
    origin, store = with_remote(project, tmp_path)
    gitexp_ok(project, "run", "-n", "more-trees", "-S", "train.n_est=80", "--", "dvc", "repro")
    gitexp_ok(project, "run", "-n", "as-is", "--", "dvc", "repro")  # keeps the DVC 2 entry
    assert "md5: 174410786d79ccd6ba421aa008b19a60" in git(
        project, "show", "refs/runs/as-is:dvc.lock"
    )
    # the stale lock entry names an object nobody has: push still goes, as `dvc push` does
    pushed = gitexp_ok(project, "push")
    assert "pushed 2 new run(s)" in pushed.stdout
    legacy = store / "17" / "4410786d79ccd6ba421aa008b19a60"  # DVC 2's remote layout
    assert legacy.exists()
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    gitexp_ok(clone, "pull")
    for run in ("more-trees", "as-is"):
        proc = gitexp_ok(clone, "checkout", run)
        assert "missing" not in proc.stderr
        assert DVC_UP_TO_DATE in dvc(clone, "status")
        model = json.loads(git(clone, "show", f"refs/runs/{run}:.gitexp/run.json"))["data"]
        assert "src/train.py" not in model and "summary.json" not in model  # deps, uncached
        assert set(model) >= {"model.pkl", "eval", "data/features", "data/prepared"}
    git(clone, "checkout", "-q", "main")
    proc = gitexp_ok(clone, "apply", "more-trees")
    assert "train:\n  seed: 20170428\n  n_est: 80" in (clone / "params.yaml").read_text()
    assert DVC_UP_TO_DATE in dvc(clone, "status")


# --- 2: reproduce executes the pipeline ------------------------------------------------------


def test_reproduce_of_a_dvc_repro_run_really_runs_the_stages(project: Path) -> None:
    noisy = project / "src" / "evaluate.py"
    noisy.write_text(noisy.read_text() + "json.dump({'noise': __import__('random').random()}, "
                     "open('noise.json', 'w'))\n")  # fmt: skip
    (project / "gitexp.yaml").write_text("metrics: [noise.json]\n")
    gitexp_ok(project, "run", "-n", "noisy", "--", "dvc", "repro")
    first = json.loads(git(project, "show", "refs/runs/noisy:noise.json"))["noise"]
    proc = run_gitexp(project, "reproduce", "noisy", "--json")
    assert proc.returncode == 1, proc.stderr  # a re-run that happened draws another number
    result = json.loads(proc.stdout)
    assert "dvc repro --force --no-run-cache" in proc.stderr
    noise = next(m for m in result["metrics"] if m["key"] == "noise")
    assert noise["old"] == first and noise["new"] != first and noise["result"] == "differs"
    others = [m for m in result["metrics"] if m["key"] != "noise"]
    assert others and all(m["result"] == "ok" for m in others)


def test_reproduce_starts_from_the_inputs_not_the_outputs(repo: Path) -> None:
    """A command that edits its input in place reproduces (issue: reproduce from the run's
    inputs, not its outputs)."""
    (repo / "counter.txt").write_text("1\n")
    git(repo, "add", "counter.txt")
    git(repo, "commit", "-q", "-m", "counter")
    code = (
        "import json; n = int(open('counter.txt').read()) + 1; "
        "open('counter.txt', 'w').write(f'{n}\\n'); "
        "json.dump({'n': n}, open('metrics.json', 'w'))"
    )
    gitexp_ok(repo, "run", "-n", "bump", "--", sys.executable, "-c", code)
    proc = run_gitexp(repo, "reproduce", "bump")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "reproduced: bump-repro-1 re-ran bump" in proc.stdout
    record = json.loads(git(repo, "show", "refs/runs/bump-repro-1:.gitexp/run.json"))
    assert record["base"] == git(repo, "rev-parse", "HEAD")  # the original base, not inputs


# --- 3, 6, 11: show, diff and metrics as DVC reads them ----------------------------------------


def test_diff_of_dvc_experiments_equals_dvc_exp_diff(project: Path) -> None:
    ours = json.loads(gitexp_ok(project, "diff", "exp-small", "exp-big", "--json").stdout)
    theirs = json.loads(dvc(project, "exp", "diff", "exp-small", "exp-big", "--json"))
    assert ours["metrics"] == theirs["metrics"]
    assert ours["params"] == theirs["params"]
    assert set(ours["data"]) == {"eval", "model.pkl"}  # outputs only, no code deps


def test_show_reads_metrics_inside_cached_outputs_as_dvc_does(project: Path) -> None:
    (workspace,) = json.loads(gitexp_ok(project, "show", "workspace", "--json").stdout)
    theirs = json.loads(dvc(project, "metrics", "show", "--json"))[""]["data"]
    assert set(theirs) == set(workspace["metrics"])
    for path, found in theirs.items():
        assert workspace["metrics"][path] == _flatten(found["data"]), path
    (head,) = json.loads(gitexp_ok(project, "show", "HEAD", "--json").stdout)
    assert head["metrics"]["eval/metrics.json"] == workspace["metrics"]["eval/metrics.json"]
    assert "errors" not in head  # no "kept by DVC" note for summary.json (cache: false)


def _flatten(doc: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_metrics_diff_between_commits_equals_dvc_metrics_diff(project: Path) -> None:
    gitexp_ok(project, "run", "-n", "big", "-S", "train.n_est=90", "--", "dvc", "repro")
    gitexp_ok(project, "apply", "big")
    ours = json.loads(gitexp_ok(project, "diff", "HEAD", "workspace", "--json").stdout)
    theirs = json.loads(dvc(project, "metrics", "diff", "HEAD", "--json"))
    # summary.json is git-ignored: HEAD lacks it for both (DVC leaves out a null diff)
    assert theirs.pop("summary.json") == {
        k: {kk: vv for kk, vv in v.items() if kk != "diff"}
        for k, v in ours["metrics"].pop("summary.json").items()
    }
    assert ours["metrics"] == theirs


def test_dvc_experiments_are_listed_named_and_imported(project: Path) -> None:
    listed = json.loads(gitexp_ok(project, "show", "--json").stdout)
    dvc_show = json.loads(dvc(project, "exp", "show", "--json"))
    names = {e["name"] for e in listed if e.get("dvc_experiment")}
    assert names == {"exp-small", "exp-big"}
    theirs = {}
    for baseline in dvc_show:
        for exp in baseline.get("experiments") or []:
            for rev in exp["revs"]:
                theirs[rev["name"]] = rev["data"]["params"]["params.yaml"]["data"]["train"]
    for entry in listed:
        assert entry["params"]["params.yaml"]["train.n_est"] == theirs[entry["name"]]["n_est"]
    twin = project.parent / "twin"
    shutil.copytree(project, twin, symlinks=True)
    dvc(twin, "exp", "apply", "exp-big")
    gitexp_ok(project, "checkout", "exp-big")
    assert "n_est: 120" in (project / "params.yaml").read_text()
    # the same state as DVC's own `exp apply` (both miss the git-ignored summary.json)
    assert dvc(project, "status") == dvc(twin, "status")
    assert (project / "model.pkl").read_bytes() == (twin / "model.pkl").read_bytes()
    git(project, "checkout", "-q", "-f", "main")
    proc = gitexp_ok(project, "import-dvc", "--prefix", "dvc/")
    assert "imported DVC experiment 'exp-big' as run 'dvc/exp-big'" in proc.stdout
    runs = {e["name"]: e for e in json.loads(gitexp_ok(project, "show", "--json").stdout)}
    assert set(runs) == {"dvc/exp-big", "dvc/exp-small"}  # listed once, as runs
    assert runs["dvc/exp-big"]["metrics"]["eval/metrics.json"]["roc_auc"] == 0.98
    assert runs["dvc/exp-big"]["tags"] == {"dvc_experiment": "exp-big"}


# --- 7, 8: overrides of pipeline params leave the workspace consistent ------------------------


def test_override_of_a_block_list_at_its_keys_indent(project: Path) -> None:
    proc = gitexp_ok(project, "run", "-n", "labels", "-S", "config/eval.yaml:labels=[a,b,c]",
                     "-S", "config/eval.yaml:threshold=0.4", "--", "true")  # fmt: skip
    text = git(project, "show", "refs/runs/labels:config/eval.yaml")
    assert text == "threshold: 0.4\nlabels: [a, b, c]", proc.stderr
    assert (project / "config" / "eval.yaml").read_text() == pipeline.EVAL_PARAMS


def test_run_with_overrides_leaves_the_pipeline_as_it_was(project: Path) -> None:
    lock = (project / "dvc.lock").read_bytes()
    proc = gitexp_ok(project, "run", "-n", "tweak", "-S", "train.n_est=70", "--", "dvc", "repro")
    assert "put back dvc.lock" in proc.stderr
    assert (project / "dvc.lock").read_bytes() == lock
    assert (project / "params.yaml").read_text() == pipeline.PARAMS
    assert DVC_UP_TO_DATE in dvc(project, "status")
    assert "n_est: 70" in git(project, "show", "refs/runs/tweak:params.yaml")
    assert git(project, "show", "refs/runs/tweak:dvc.lock") != lock.decode().strip()


# --- 10/11: carried metrics and generated folders ----------------------------------------------


def test_up_to_date_pipeline_metrics_count_and_dvc_plots_stay_out(project: Path) -> None:
    dvc(project, "plots", "show", "-q")
    assert (project / "dvc_plots").is_dir()
    gitexp_ok(project, "run", "-n", "nothing-to-do", "--", "dvc", "repro")
    (entry,) = json.loads(gitexp_ok(project, "show", "nothing-to-do", "--json").stdout)
    assert entry["metrics"]["eval/metrics.json"]["roc_auc"] == 0.7  # valid for its inputs
    assert "carried" not in entry
    files = git(project, "ls-tree", "-r", "--name-only", "refs/runs/nothing-to-do").splitlines()
    assert not [f for f in files if f.startswith("dvc_plots/")]
    assert "summary.json" in files  # git-ignored, but a declared metrics file of the run
