"""Which commit did it: `gitexp report --history` charts a metric over a branch's commits from
the runs recorded on them, and `gitexp bisect` finds the first commit where it regressed,
re-running the command only where no run was recorded."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from browser import blocks
from conftest import git, run_gitexp

# acc = 1 - lr: commits 0-4 train with lr 0.1 (acc 0.9), commit 5 breaks it (lr 0.4, acc 0.6)
LRS = [0.1, 0.1, 0.1, 0.1, 0.1, 0.4, 0.4, 0.4]
RECORDED = {0, 2, 7}


@pytest.fixture
def history_repo(repo: Path) -> tuple[Path, list[str]]:
    shas = []
    for index, lr in enumerate(LRS):
        params = (repo / "params.yaml").read_text()
        (repo / "params.yaml").write_text(params.replace("seed: ", f"# change {index}\nseed: "))
        text = (repo / "params.yaml").read_text()
        text = "\n".join(
            f"  lr: {lr}" if line.startswith("  lr:") else line for line in text.splitlines()
        )
        (repo / "params.yaml").write_text(text + "\n")
        git(repo, "commit", "-q", "-am", f"change {index}")
        shas.append(git(repo, "rev-parse", "HEAD"))
        if index in RECORDED:
            # from a clean workspace: a metrics file left by the last run with the same bytes
            # would count as carried, not written by this run
            (repo / "metrics.json").unlink(missing_ok=True)
            proc = run_gitexp(repo, "run", "-n", f"c{index}", "--", sys.executable, "train.py")
            assert proc.returncode == 0, proc.stderr
    (repo / "metrics.json").unlink()
    (repo / "started").unlink()
    return repo, shas


def test_history_charts_a_metric_over_commits(history_repo, mermaid) -> None:
    repo, shas = history_repo
    proc = run_gitexp(repo, "report", "--history", f"{shas[0]}~1..HEAD", "--metric", "acc")
    assert proc.returncode == 0, proc.stderr
    md = proc.stdout
    (block,) = blocks(md)
    assert mermaid.line_points(block)
    assert "5 of 8 commits have no run with acc" in md
    rows = [line for line in md.splitlines() if line.startswith("| ") and "change" in line]
    assert len(rows) == 8 and rows[0].startswith(f"| {shas[7][:7]} | change 7 | c7 | 0.6 |")
    assert f"| {shas[2][:7]} | change 2 | c2 | 0.9 |" in md
    html = run_gitexp(repo, "report", "--history", f"{shas[0]}~1..HEAD", "--format", "html")
    assert html.returncode == 0 and shas[7][:7] in html.stdout and "<svg" in html.stdout
    bad = run_gitexp(repo, "report", "--history", "HEAD~3..HEAD", "--metric", "acuracy")
    assert bad.returncode == 2 and "unknown metric 'acuracy'" in bad.stderr
    mixed = run_gitexp(repo, "report", "--history", "HEAD~3..HEAD", "--check", "acc > 0")
    assert mixed.returncode == 2 and "takes no --base, --head or --check" in mixed.stderr


def test_bisect_uses_recorded_runs_and_reruns_the_rest(history_repo) -> None:
    repo, shas = history_repo
    status = git(repo, "status", "--porcelain")
    head = git(repo, "rev-parse", "HEAD")
    proc = run_gitexp(repo, "bisect", "--metric", "acc", "--good", shas[0], "--json",
                      "--", sys.executable, "train.py")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["first_bad"] == shas[5]
    assert result["threshold"] == 0.75 and result["goal"] == "max"
    assert result["reran"] == 2  # commits 4 and 5; 0, 2 and 7 had runs
    sources = {c["commit"]: c["from"] for c in result["commits"]}
    assert sources[shas[2]] == "run c2" and sources[shas[5]].startswith("ran bisect-")
    # the workspace is untouched; the re-runs are recorded, so the next bisect runs nothing
    assert git(repo, "status", "--porcelain") == status and git(repo, "rev-parse", "HEAD") == head
    again = run_gitexp(repo, "bisect", "--metric", "acc", "--good", shas[0], "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["first_bad"] == shas[5]
    assert json.loads(again.stdout)["reran"] == 0


def test_bisect_without_a_command_names_the_candidates(history_repo) -> None:
    repo, shas = history_repo
    proc = run_gitexp(repo, "bisect", "--metric", "acc", "--good", shas[0])
    assert proc.returncode == 0, proc.stderr
    assert "the first bad commit is one of these" in proc.stdout
    for index in (3, 4, 5, 6, 7):
        assert shas[index][:10] in proc.stdout.splitlines()[-1]
    assert "3 of 8 commits judged (0 run now)" in proc.stdout  # the runs of 0, 2 and 7
    # a newer run at the good commit that lacks the metric does not hide the one that has it
    git(repo, "checkout", "-q", shas[0])
    proc = run_gitexp(repo, "run", "-n", "other-metric", "--", sys.executable, "-c",
                      "open('metrics.json', 'w').write('{\"m\": 1}')")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    git(repo, "checkout", "-q", "-")
    again = run_gitexp(repo, "bisect", "--metric", "acc", "--good", shas[0])
    assert again.returncode == 0 and "(0 run now)" in again.stdout, again.stderr


def test_bisect_errors(history_repo) -> None:
    repo, shas = history_repo
    cases = [
        (["--good", "HEAD", "--bad", shas[0]], "is not an ancestor"),
        (["--good", shas[0], "--bad", shas[2]], "nothing regressed"),
        (["--good", shas[0], "--threshold", "0.5"], "nothing regressed"),
        (["--good", "nope"], "--good nope: no such commit"),
        (["--good", shas[1]], "no value of acc at --good"),
    ]
    typo = run_gitexp(repo, "bisect", "--metric", "acuracy", "--good", shas[0])
    assert typo.returncode == 2 and "unknown metric 'acuracy'" in typo.stderr, typo.stderr
    for args, message in cases:
        proc = run_gitexp(repo, "bisect", "--metric", "acc", *args)
        assert proc.returncode == 2, (args, proc.stdout)
        assert message in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
