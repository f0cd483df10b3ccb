"""Run names (rows N1 to N8): rejected before the command runs, never reaching git as options."""

from __future__ import annotations

import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

import oracle
from conftest import git, show_json
from gitexp.core.names import check_free, generate_name, validate_name
from gitexp.errors import UsageError

N1_BAD = ["a..b", "with space", "a~b", "a^b", "a:b", "a?b", "a*b", "a[b", "a\\b", "ctl\x01",
          "new\nline", "a@{b", "@", "trailing.", "x.lock", "a//b", "/lead", "trail/", ".hidden",
          "dir/.hidden"]  # fmt: skip


@pytest.mark.parametrize("name", N1_BAD)
def test_N1_invalid_names_are_rejected(name: str) -> None:
    with pytest.raises(UsageError, match="invalid run name"):
        validate_name(name)


@pytest.mark.parametrize("name", ["-foo", "--output=/tmp/x", "--upload-pack=touch pwn"])
def test_N2_leading_dash_is_rejected(name: str) -> None:
    with pytest.raises(UsageError, match="must not begin with '-'"):
        validate_name(name)


@pytest.mark.parametrize("name", ["$(touch pwn)", "`id`", ";rm -rf ~", "a|b", "a&&b"])
def test_N3_shell_metacharacters_are_rejected(name: str) -> None:
    with pytest.raises(UsageError):
        validate_name(name)


def test_N4_unicode_is_normalised_or_rejected() -> None:
    nfd = unicodedata.normalize("NFD", "café")
    with pytest.raises(UsageError):  # only ASCII letters are allowed
        validate_name(nfd)
    for bad in ["a\u202eb", "a\u200bb", "run-\U0001f680"]:
        with pytest.raises(UsageError):
            validate_name(bad)


def test_N5_names_over_100_bytes() -> None:
    assert validate_name("a" * 100) == "a" * 100
    with pytest.raises(UsageError, match="longer than 100 bytes"):
        validate_name("a" * 101)


def test_N6_file_folder_conflicts() -> None:
    with pytest.raises(UsageError, match="would conflict"):
        check_free("a/b", ["a"])
    with pytest.raises(UsageError, match="would conflict"):
        check_free("a", ["a/b"])
    check_free("ab", ["a"])


def test_N7_case_only_difference_is_a_duplicate() -> None:
    with pytest.raises(UsageError, match="differs only by case"):
        check_free("Run1", ["run1"])


@pytest.mark.parametrize("name", ["HEAD", "head", "workspace", "deadbeef", "a" * 40])
def test_N8_reserved_words_and_commit_ids(name: str) -> None:
    with pytest.raises(UsageError):
        validate_name(name)


def test_N8_branch_names_are_refused() -> None:
    with pytest.raises(UsageError, match="already a branch or tag"):
        check_free("main", [], ["main"])


def test_valid_names() -> None:
    for name in ["exp1", "lr-0.1", "sweep/lr_0.1", "A.B-c_d"]:
        assert validate_name(name) == name
    assert validate_name(generate_name([]))


@pytest.mark.parametrize("name", ["a..b", "-n", "--output=/tmp/x", "HEAD", "main", "a/b"])
def test_N1_N2_N8_cli_rejects_before_running(repo: Path, gitexp, name: str) -> None:
    if name == "a/b":
        assert gitexp("run", "-n", "a", "--", "true").returncode == 0
    before = oracle.take(repo)
    proc = gitexp("run", f"--name={name}", "--", sys.executable, "train.py")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("gitexp: error: ")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (repo / "started").exists()
    oracle.assert_untouched(repo, before, max_new_runs=0)


def test_N2_refs_named_like_options_never_reach_git_as_options(repo: Path, gitexp, tmp_path):
    """A hostile ref planted under refs/runs/ cannot turn into a git option."""
    target = tmp_path / "x"
    head = git(repo, "rev-parse", "HEAD")
    ref = repo / ".git" / "refs" / "runs" / f"--output={target}"
    ref.parent.mkdir(parents=True)
    ref.write_text(head + "\n")
    assert gitexp("show").returncode == 0
    for args in (["show", f"--output={target}"], ["diff", f"--output={target}", "HEAD"],
                 ["log", f"--output={target}"], ["remove", f"--output={target}"]):  # fmt: skip
        proc = gitexp(*args)
        assert proc.returncode == 2
    proc = gitexp("diff", "--", f"--output={target}", "HEAD")
    assert proc.returncode == 2 and "must not begin with '-'" in proc.stderr
    assert not target.exists()


def test_N8_a_run_name_wins_over_a_revision_and_show_main_shows_the_branch(repo, gitexp):
    assert gitexp("run", "-n", "v1", "-S", "seed=7", "--", "true").returncode == 0
    git(repo, "tag", "v2")
    # run names win over revisions of the same name
    assert show_json(gitexp, "v1")[0]["params"]["params.yaml"]["seed"] == 7
    main = show_json(gitexp, "main")[0]
    assert main["rev"] == git(repo, "rev-parse", "main")
    assert main["params"]["params.yaml"]["seed"] == 1


def test_hypothesis_style_random_names(repo: Path, gitexp) -> None:
    """Names from all over Unicode: rejected with exit 2, or a ref named exactly NFC(name)."""
    import random

    rng = random.Random(7)
    alphabet = "aZ09._-/ \t~^:?*[\\@{}é\u0301\u202e\u200b\U0001f680$`;|&\n"
    for _ in range(12):
        name = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        before = oracle.take(repo)
        proc = subprocess.run(
            [sys.executable, "-m", "gitexp", "run", f"--name={name}", "--", "true"],
            cwd=repo, capture_output=True, text=True,
        )  # fmt: skip
        if proc.returncode == 2:
            oracle.assert_untouched(repo, before, max_new_runs=0)
        else:
            assert proc.returncode == 0, proc.stderr
            added = oracle.assert_untouched(repo, before)
            assert list(added) == [f"refs/runs/{unicodedata.normalize('NFC', name)}"]


def test_N6_N7_case_and_folder_clashes_found_without_listing_every_run(repo: Path, gitexp):
    assert gitexp("run", "-n", "Grp/x", "--", "true").returncode == 0
    for name, message in (("grp", "run 'Grp/x' exists; 'grp' would conflict"),
                          ("GRP/x/y", "run 'Grp/x' exists; 'GRP/x/y' would conflict"),
                          ("grp/X", "differs only by case from 'Grp/x'")):  # fmt: skip
        proc = gitexp("run", "-n", name, "--", "true")
        assert proc.returncode == 2 and message in proc.stderr, (name, proc.stderr)
    assert gitexp("run", "-n", "grp2/x", "--", "true").returncode == 0
