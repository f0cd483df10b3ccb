"""`gitexp diff`: any two runs, revisions or the workspace, in DVC's JSON shape."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest

from conftest import git
from gitexp.core.compare import diff_json, diff_sections


@pytest.fixture
def two_runs(repo: Path, gitexp) -> Path:
    for name, lr in (("low", "0.1"), ("high", "0.4")):
        proc = gitexp("run", "-n", name, "-S", f"train.lr={lr}", "--", sys.executable, "train.py")
        assert proc.returncode == 0, proc.stderr
    return repo


def diff_of(gitexp, *args: str) -> dict:
    proc = gitexp("diff", "--json", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_two_runs_json(two_runs: Path, gitexp) -> None:
    got = diff_of(gitexp, "low", "high")
    assert got == {
        "params": {"params.yaml": {"train.lr": {"old": 0.1, "new": 0.4, "diff": 0.4 - 0.1}}},
        "metrics": {
            "metrics.json": {
                "acc": {"old": 0.9, "new": 0.6, "diff": 0.6 - 0.9},
                "loss": {"old": 0.2, "new": 0.8, "diff": 0.8 - 0.2},
            }
        },
        "data": {},
    }


def test_table_has_old_new_change_and_percent(two_runs: Path, gitexp) -> None:
    lines = gitexp("diff", "low", "high").stdout.splitlines()
    assert lines[0].split() == ["path", "key", "low", "high", "change", "change", "%"]
    acc = next(line for line in lines if " acc " in line).split()
    assert acc == ["metrics.json", "acc", "0.9", "0.6", "-0.3", "-33.33%"]


def test_all_adds_unchanged_keys(two_runs: Path, gitexp) -> None:
    got = diff_of(gitexp, "low", "high", "--all")
    assert got["params"]["params.yaml"]["seed"] == {"old": 1, "new": 1, "diff": 0}
    assert "seed" not in json.dumps(diff_of(gitexp, "low", "high"))


def test_defaults_head_against_workspace(repo: Path, gitexp) -> None:
    assert gitexp("diff").stdout.startswith("no differences")
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text().replace("0.1", "0.3"))
    (repo / "metrics.json").write_text('{"acc": 0.5}')
    got = diff_of(gitexp)
    assert got["params"]["params.yaml"]["train.lr"] == {"old": 0.1, "new": 0.3, "diff": 0.3 - 0.1}
    assert got["metrics"]["metrics.json"]["acc"] == {"old": None, "new": 0.5, "diff": None}
    one = diff_of(gitexp, "HEAD")  # B defaults to the workspace
    assert one == got


def test_any_git_revisions_and_run_suffixes(two_runs: Path, gitexp) -> None:
    git(two_runs, "tag", "v1")
    got = diff_of(gitexp, "main", "high")
    assert got["params"]["params.yaml"]["train.lr"] == {"old": 0.1, "new": 0.4, "diff": 0.4 - 0.1}
    assert got["metrics"]["metrics.json"]["acc"]["old"] is None  # main has no metrics
    assert diff_of(gitexp, "high~1", "v1") == {"params": {}, "metrics": {}, "data": {}}
    sha = git(two_runs, "rev-parse", "refs/runs/low")
    assert diff_of(gitexp, sha[:10], "high") == diff_of(gitexp, "low", "high")


def test_csv_and_md(two_runs: Path, gitexp) -> None:
    rows = list(csv.reader(io.StringIO(gitexp("diff", "low", "high", "--csv").stdout)))
    assert rows[0] == ["path", "key", "low", "high", "change", "change %"]
    assert ["metrics.json", "loss", "0.2", "0.8", "0.6", "+300.00%"] in rows
    md = gitexp("diff", "low", "high", "--md").stdout
    assert md.startswith("| path") and "| metrics.json | acc" in md


def test_unknown_revision_and_malformed_files(repo: Path, gitexp) -> None:
    proc = gitexp("diff", "nope", "HEAD")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "gitexp: error: unknown run or revision 'nope': see 'gitexp show' for runs, "
        "'git log' for commits"
    )
    (repo / "params.yaml").write_text("train:\n  lr: [1\n")
    proc = gitexp("diff")
    assert proc.returncode == 2
    assert "workspace: params.yaml:3:1" in proc.stderr and "Traceback" not in proc.stderr


def test_pure_diff_marks_added_and_removed_keys() -> None:
    changes = diff_sections(
        {"metrics": {"m.json": {"a": 1, "gone": 2}}}, {"metrics": {"m.json": {"a": 3, "new": 4}}}
    )
    assert diff_json(changes) == {
        "params": {},
        "metrics": {
            "m.json": {
                "a": {"old": 1, "new": 3, "diff": 2},
                "gone": {"old": 2, "new": None, "diff": None},
                "new": {"old": None, "new": 4, "diff": None},
            }
        },
    }
