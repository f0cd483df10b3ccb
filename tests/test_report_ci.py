"""The CI workflows `gitexp ci` writes, run step by step on this machine against a bare
remote: the job records a run, pushes it, and reports that run (--head), a failed budget
fails the job after the report is written, and a report that cannot be built is posted as
its error without failing the job (issue 10, item 5)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import git, run_gitexp


@pytest.fixture
def clone(repo: Path, tmp_path: Path) -> Path:
    """A bare remote with main and a feature branch, cloned as CI would check it out."""
    remote = tmp_path / "remote.git"
    git(repo, "init", "-q", "--bare", str(remote))
    subprocess.run([sys.executable, "train.py"], cwd=repo, check=True, capture_output=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "results")
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "-q", "origin", "main")
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text().replace("0.1", "0.05"))
    git(repo, "commit", "-q", "-am", "smaller lr")
    git(repo, "push", "-q", "origin", "feature")
    work = tmp_path / "ci"
    git(tmp_path, "clone", "-q", str(remote), str(work))
    git(work, "checkout", "-q", "--detach", "origin/feature")
    return work


def _steps(work: Path, *args: str) -> dict[str, dict]:
    proc = run_gitexp(work, "ci", "github", *args)
    assert proc.returncode == 0, proc.stderr
    workflow = yaml.safe_load((work / ".github/workflows/gitexp.yml").read_text())
    (work / ".github/workflows/gitexp.yml").unlink()  # CI runs it from the commit, not here
    return {step.get("name", ""): step for step in workflow["jobs"]["report"]["steps"]}


def _run_step(work: Path, step: dict, env: dict[str, str], tmp: Path) -> dict[str, str]:
    """Runs a step's script with bash as the runner does; returns what it wrote to
    $GITHUB_OUTPUT."""
    output = tmp / f"output-{abs(hash(step['name']))}"
    output.write_text("")
    full = {**os.environ, **env, "GITHUB_OUTPUT": str(output)}
    proc = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=work, env=full,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, (step["name"], proc.stdout, proc.stderr)
    return dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)


def test_github_job_reports_the_run_it_made(clone: Path, tmp_path: Path) -> None:
    steps = _steps(clone, "--run", f"{sys.executable} train.py", "--check", "acc >= base.acc")
    _run_step(clone, steps["Fetch the recorded runs and the data they need"], {}, tmp_path)
    out = _run_step(
        clone,
        steps["Run the experiment and push the run"],
        {"PR": "7", "ATTEMPT": "1"},
        tmp_path,
    )
    name = out["name"]
    assert out["status"] == "0" and name.startswith("pr-7-")
    remote_refs = git(clone, "ls-remote", "origin", "refs/runs/*")
    assert f"refs/runs/{name}" in remote_refs  # pushed for the next pushes and reviewers
    build = steps["Build the report"]
    assert "steps.run.outputs.name" in build["env"]["HEAD_RUN"]
    env = {"BASE_REF": "main", "HEAD_RUN": name, "GITHUB_HEAD_REF": "feature"}
    out = _run_step(clone, build, env, tmp_path)
    assert out["status"] == "0"  # acc went up: 0.95 > 0.9
    text = (clone / "gitexp-report.md").read_text()
    assert text.startswith("<!-- gitexp-report -->")
    assert f"## gitexp report: feature -&gt; main, run {name}\n" in text  # the run just made
    head = next(line for line in text.splitlines() if line.startswith("| acc |"))
    assert "0.95" in head and "✅ better" in head
    fail = steps["Fail when a budget failed or the experiment failed"]
    assert "steps.report.outputs.status == '1'" in fail["if"]


def test_github_job_posts_an_error_instead_of_failing(clone: Path, tmp_path: Path) -> None:
    steps = _steps(clone, "--check", "acc > 0.99")
    out = _run_step(clone, steps["Build the report"], {"BASE_REF": "no-such-branch"}, tmp_path)
    assert out["status"] == "2"  # reported, not raised: the post step still runs
    text = (clone / "gitexp-report.md").read_text()
    assert text.startswith("<!-- gitexp-report -->") and "could not be built" in text
    assert "unknown run or revision 'origin/no-such-branch'" in text
    out = _run_step(clone, steps["Build the report"], {"BASE_REF": "main"}, tmp_path)
    assert out["status"] == "1"  # a failed budget: the only reason the job fails
    assert "❌ **1 of 1 budget failed**" in (clone / "gitexp-report.md").read_text()
    post = steps["Post the report (one comment, updated on every push)"]
    assert post["if"].startswith("always()")


def test_gitlab_job_reports_the_run_it_made(clone: Path, tmp_path: Path) -> None:
    proc = run_gitexp(clone, "ci", "gitlab", "--run", f"{sys.executable} train.py")
    assert proc.returncode == 0, proc.stderr
    script = yaml.safe_load((clone / ".gitlab-ci.yml").read_text())["gitexp-report"]["script"]
    (clone / ".gitlab-ci.yml").unlink()
    local = [s for s in script if not s.startswith(("python3 - <<", "pip install"))]
    env = {**os.environ, "CI_MERGE_REQUEST_IID": "3", "CI_COMMIT_SHORT_SHA": "abc1234",
           "CI_PIPELINE_ID": "42", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
           "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feature"}  # fmt: skip
    proc = subprocess.run(["bash", "-c", "\n".join(local)], cwd=clone, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "refs/runs/mr-3-abc1234-42" in git(clone, "ls-remote", "origin", "refs/runs/*")
    assert "main, run mr-3-abc1234-42\n" in (clone / "gitexp-report.md").read_text()
