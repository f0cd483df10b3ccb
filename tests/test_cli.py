"""The other commands (init, log, remove), help, exit codes, and what the CLI imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import oracle
from conftest import git, show_json


def test_init_prepares_a_repository_and_is_idempotent(repo: Path, gitexp) -> None:
    proc = gitexp("init")
    assert proc.returncode == 0, proc.stderr
    assert (repo / ".dvc" / "config").exists()
    assert "/.gitexp/" in (repo / ".gitignore").read_text().splitlines()
    gitignore = (repo / ".gitignore").read_text()
    again = gitexp("init")
    assert again.returncode == 0 and "initialised DVC" not in again.stdout
    assert (repo / ".gitignore").read_text() == gitignore


def test_outside_a_git_repository(tmp_path: Path, gitexp) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    for args in (["init"], ["show"], ["diff"], ["run", "--", "true"]):
        proc = gitexp(*args, cwd=outside)
        assert proc.returncode == 3
        assert proc.stderr.strip() == (
            "gitexp: error: not a git repository: run gitexp inside one (or 'git init' first)"
        )
    assert not list(outside.iterdir())
    bare = tmp_path / "bare.git"
    git(outside, "init", "-q", "--bare", str(bare))
    proc = gitexp("show", cwd=bare)
    assert proc.returncode == 3 and "no working tree here (a bare repository" in proc.stderr


def test_usage_errors_are_one_line_with_exit_2(repo: Path, gitexp) -> None:
    """The parser's errors read as gitexp's own: one line, what is wrong, where to look."""
    for args, message in (
        (["log"], "Missing argument 'RUN'. (see 'gitexp log --help')"),
        (["show", "--limit", "0"], "0 is not in the range x>=1. (see 'gitexp show --help')"),
        (["report", "--format", "pdf"], "'pdf' is not one of 'md', 'html'."),
        (["nosuch"], "No such command 'nosuch'. (see 'gitexp --help')"),
        (["ci", "github", "--check", "acc >>"], "invalid filter 'acc >>'"),
    ):
        proc = gitexp(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("gitexp: error: "), (args, lines)
        assert message in lines[0], (args, lines)
    assert not (repo / ".github").exists()  # the bad budget wrote no workflow


def test_log_shows_record_and_output(repo: Path, gitexp) -> None:
    assert gitexp("run", "-n", "logged", "--", sys.executable, "train.py").returncode == 0
    proc = gitexp("log", "logged")
    assert proc.returncode == 0
    fields = dict(line.split(None, 1) for line in proc.stdout.split("\n--- output")[0].splitlines())
    assert fields["name"] == "logged" and fields["status"] == "success"
    assert fields["exit_code"] == "0" and fields["rev"] == git(
        repo, "rev-parse", "refs/runs/logged"
    )
    assert fields["command"] == f"{sys.executable} train.py"
    assert fields["params.yaml:train.lr"] == "0.1" and fields["metrics.json:acc"] == "0.9"
    assert proc.stdout.endswith("--- output ---\ntrained with lr 0.1\n")
    record = json.loads(gitexp("log", "logged", "--json").stdout)
    assert record["name"] == "logged" and record["log"] == "trained with lr 0.1\n"
    proc = gitexp("log", "HEAD")
    assert proc.returncode == 2 and "'HEAD' is not a run" in proc.stderr


def test_remove_deletes_refs_only(repo: Path, gitexp) -> None:
    for name in ("a", "b", "c"):
        assert gitexp("run", "-n", name, "--", "true").returncode == 0
    before = oracle.take(repo)
    proc = gitexp("remove", "a", "b")
    assert proc.returncode == 0
    assert proc.stdout.splitlines() == ["removed run 'a'", "removed run 'b'"]
    assert [r["name"] for r in show_json(gitexp)] == ["c"]
    after = oracle.take(repo)
    assert after.worktree == before.worktree and after.head == before.head
    proc = gitexp("remove", "c", "nope")
    assert proc.returncode == 2 and "no run named 'nope'" in proc.stderr
    assert [r["name"] for r in show_json(gitexp)] == ["c"]  # all or nothing


def test_help_lists_the_commands(gitexp) -> None:
    proc = gitexp("--help")
    assert proc.returncode == 0
    for command in ("init", "run", "show", "diff", "log", "remove"):
        assert f"  {command} " in proc.stdout
    assert gitexp("--version").stdout.startswith("gitexp, version ")
    assert gitexp("frobnicate").returncode == 2


@pytest.mark.parametrize("args", [["--help"], ["show"], ["diff"], ["show", "--json"]])
def test_fast_paths_import_neither_dvc_nor_gitpython(repo: Path, args: list[str]) -> None:
    code = (
        "import sys\nfrom gitexp.cli import main\n"
        f"code = main({args!r})\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'dvc', 'git', 'pandas'})\n"
        "print('HEAVY', heavy, code, file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True)
    assert "HEAVY [] 0" in proc.stderr, proc.stderr


def test_run_via_git_alias(repo: Path) -> None:
    git_exp = Path(sys.executable).parent / "git-exp"
    assert git_exp.exists(), "the git-exp console script is installed with the package"
    proc = subprocess.run(["git", "exp", "show", "--json"], cwd=repo, capture_output=True,
                          text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_user_string_is_never_an_option_for_git_show(repo: Path, gitexp) -> None:
    proc = gitexp("show", "--", "--all")
    assert proc.returncode == 2
    assert "must not begin with '-'" in proc.stderr
    assert git(repo, "status", "--porcelain") == ""


def test_precision_and_C_option(repo: Path, gitexp, tmp_path: Path) -> None:
    write = "import json; json.dump({'acc': 0.123456789}, open('metrics.json', 'w'))"
    assert gitexp("run", "-n", "p", "--", sys.executable, "-c", write).returncode == 0
    assert "0.123457" in gitexp("show").stdout
    assert "0.123" in gitexp("show", "--precision", "3").stdout
    assert "0.1235" not in gitexp("show", "--precision", "3").stdout
    elsewhere = gitexp("-C", str(repo), "show", "--json", cwd=tmp_path)
    assert json.loads(elsewhere.stdout)[0]["name"] == "p"
