"""Runs you can trust and manage, each as the user's sequence of commands: a run's metrics
are its own, a finished run is never thrown away, sorting both ways, apply merges, the same
metrics everywhere, rename/tag/note/remove, sharing, choosing columns, completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PARAMS, git, make_repo, run_file, run_gitexp, show_json, train

WRITE_ACC = "import json; json.dump({'acc': 1}, open('metrics.json', 'w'))"


def test_a_failed_run_never_shows_the_previous_runs_metrics(repo: Path, gitexp) -> None:
    assert gitexp("run", "-n", "good", "--", sys.executable, "-c", WRITE_ACC).returncode == 0
    assert gitexp("run", "-n", "failing", "--", "false").returncode == 1
    runs = {r["name"]: r for r in show_json(gitexp)}
    assert runs["good"]["metrics"] == {"metrics.json": {"acc": 1}}
    assert runs["failing"]["metrics"] == {}  # not its own
    assert runs["failing"]["carried"] == {"metrics.json": {"acc": 1}}
    row = next(line for line in gitexp("show").stdout.splitlines() if line.startswith("failing"))
    assert row.split()[-1] == "(1)"  # shown apart, in parentheses
    assert [r["name"] for r in show_json(gitexp, "--filter", "acc == 1")] == ["good"]
    diff = json.loads(gitexp("diff", "good", "failing", "--json").stdout)
    assert diff["metrics"]["metrics.json"]["acc"] == {"old": 1, "new": None, "diff": None}
    # a run that rewrites the file with the same values still owns them
    assert gitexp("run", "-n", "same", "--", sys.executable, "-c", WRITE_ACC).returncode == 0
    (same,) = show_json(gitexp, "same")
    assert same["metrics"] == {"metrics.json": {"acc": 1}}


def test_oversized_metrics_file_is_an_error_entry_and_the_run_lands(repo: Path, gitexp) -> None:
    big = "open('metrics.json', 'w').write('{\"x\": \"' + 'a' * 20_000_000 + '\"}')"
    (repo / "gitexp.yaml").write_text("max_file_size: 50MB\n")
    proc = gitexp("run", "-n", "huge", "--", sys.executable, "-c", big)
    assert proc.returncode == 0, proc.stderr
    assert "could not read metrics: metrics.json: too large to read" in proc.stderr
    (entry,) = show_json(gitexp, "huge")
    assert entry["status"] == "success" and "too large" in entry["errors"]["metrics.json"]


def test_sorting_honours_desc_for_text_keys(repo: Path, gitexp) -> None:
    for name in ("b-run", "a-run", "c-run"):
        assert gitexp(*train("-n", name)).returncode == 0
    newest = [r["name"] for r in show_json(gitexp, "--sort-by", "created", "--desc")]
    assert newest == ["c-run", "a-run", "b-run"]
    oldest = [r["name"] for r in show_json(gitexp, "--sort-by", "created")]
    assert oldest == ["b-run", "a-run", "c-run"]
    assert [r["name"] for r in show_json(gitexp, "--sort-by", "name", "--desc")] == [
        "c-run", "b-run", "a-run"
    ]  # fmt: skip
    assert [r["name"] for r in show_json(gitexp, "--sort-by", "created", "--desc", "--limit",
                                         "2")] == ["c-run", "a-run"]  # fmt: skip


def test_apply_merges_the_runs_change_onto_a_newer_head(repo: Path, gitexp) -> None:
    proc = gitexp("run", "-n", "old", "-S", "train.lr=0.5", "--", sys.executable, "train.py")
    assert proc.returncode == 0, proc.stderr
    for name in ("aug.py", "extra.py"):  # two commits since the run's base
        (repo / name).write_text(f"# {name}\n")
        git(repo, "add", name)
        git(repo, "commit", "-q", "-m", name)
    (repo / "train.py").write_text("# header added later\n" + (repo / "train.py").read_text())
    git(repo, "commit", "-q", "-am", "header")
    git(repo, "clean", "-qf")
    proc = gitexp("apply", "old")
    assert proc.returncode == 0, proc.stderr
    assert (repo / "aug.py").exists() and (repo / "extra.py").exists()  # later commits stay
    assert "lr: 0.5" in (repo / "params.yaml").read_text()
    assert (repo / "train.py").read_text().startswith("# header added later\n")
    status = git(repo, "status", "--porcelain")
    assert " D " not in status and "M params.yaml" in status


def test_apply_conflict_writes_nothing_and_whole_takes_the_run(repo: Path, gitexp) -> None:
    proc = gitexp("run", "-n", "fast", "-S", "train.lr=0.5", "--", sys.executable, "train.py")
    assert proc.returncode == 0
    (repo / "params.yaml").write_text(PARAMS.replace("lr: 0.1", "lr: 0.2"))
    git(repo, "commit", "-q", "-am", "a newer lr")
    git(repo, "clean", "-qf")
    before = (repo / "params.yaml").read_bytes()
    proc = gitexp("apply", "fast")
    assert proc.returncode == 3
    assert "conflicts with changes committed since its base in params.yaml" in proc.stderr
    assert (repo / "params.yaml").read_bytes() == before and not (repo / "metrics.json").exists()
    assert gitexp("apply", "fast", "--whole").returncode == 0
    assert (repo / "params.yaml").read_text() == run_file(repo, "fast", "params.yaml") + "\n"


def test_gitignored_metrics_are_the_same_in_show_diff_and_report(repo: Path, gitexp) -> None:
    (repo / ".gitignore").write_text((repo / ".gitignore").read_text() + "metrics.json\n")
    git(repo, "commit", "-q", "-am", "ignore metrics")
    assert gitexp(*train("-n", "a", "-S", "train.lr=0.2")).returncode == 0
    assert gitexp(*train("-n", "b", "-S", "train.lr=0.4")).returncode == 0
    (a,) = show_json(gitexp, "a")
    assert a["metrics"] == {"metrics.json": {"acc": 0.8, "loss": 0.4}}
    diff = json.loads(gitexp("diff", "a", "b", "--json").stdout)
    assert diff["metrics"]["metrics.json"]["acc"]["old"] == 0.8
    report = gitexp("report", "--base", "a", "--head", "b").stdout
    assert "| acc | 0.8 | 0.6 |" in report


def test_rename_tag_note_show_up_everywhere(repo: Path, gitexp) -> None:
    assert gitexp(*train("-n", "first", "--tag", "team=vision")).returncode == 0
    assert gitexp("rename", "first", "baseline").returncode == 0
    assert gitexp("rename", "baseline", "bad name").returncode == 2
    assert gitexp(*train("-n", "second")).returncode == 0
    clash = gitexp("rename", "second", "baseline")
    assert clash.returncode == 2
    assert clash.stderr.strip().endswith("already exists: choose another new name"), clash.stderr
    assert gitexp("remove", "second").returncode == 0
    assert gitexp("tag", "baseline", "stage=prod", "owner=me").returncode == 0
    proc = gitexp("tag", "baseline", "--delete", "team")
    assert proc.stdout.strip() == "tags of run 'baseline': owner=me, stage=prod"
    assert gitexp("tag", "baseline", "--delete", "nope").returncode == 2
    assert gitexp("note", "baseline", "use this one").returncode == 0
    (entry,) = show_json(gitexp)
    assert entry["name"] == "baseline" and entry["note"] == "use this one"
    assert entry["tags"] == {"stage": "prod", "owner": "me"}
    assert [r["name"] for r in show_json(gitexp, "--filter", "tags.stage == 'prod'")] == [
        "baseline"
    ]
    table = gitexp("show").stdout.splitlines()
    assert table[0].split()[6:8] == ["tags", "message"] and "use this one" in table[2]
    csv = gitexp("show", "--csv").stdout.splitlines()
    assert csv[0].startswith("run,rev,base,created,status,duration,tags,message,")
    assert git(repo, "notes", "--ref", "gitexp", "list")  # kept in git notes
    assert gitexp("note", "baseline", "--delete").returncode == 0
    assert "note" not in show_json(gitexp)[0]


def test_remove_by_glob_and_filter(repo: Path, gitexp) -> None:
    for name, lr in (("sweep/a", "0.1"), ("sweep/b", "0.2"), ("keep", "0.3")):
        assert gitexp(*train("-n", name, "-S", f"train.lr={lr}")).returncode == 0
    proc = gitexp("remove", "--filter", "train.lr >= 0.3")
    assert proc.stdout.strip() == "removed run 'keep'"
    assert gitexp("remove", "nothing*").returncode == 2
    proc = gitexp("remove", "sweep/*")
    assert proc.stdout.splitlines() == ["removed run 'sweep/a'", "removed run 'sweep/b'"]
    assert show_json(gitexp) == []


@pytest.fixture
def shared(tmp_path: Path) -> tuple[Path, Path, Path]:
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    mine = make_repo(tmp_path / "mine")
    git(mine, "remote", "add", "origin", str(origin))
    git(mine, "push", "-q", "origin", "main")
    theirs = tmp_path / "theirs"
    git(tmp_path, "clone", "-q", str(origin), str(theirs))
    return origin, mine, theirs


def test_sharing_counts_clashes_removals_and_tags(shared: tuple[Path, Path, Path]) -> None:
    origin, mine, theirs = shared
    for name in ("a", "b"):
        assert run_gitexp(mine, *train("-n", name)).returncode == 0
    assert run_gitexp(mine, "tag", "a", "stage=prod").returncode == 0
    proc = run_gitexp(mine, "push", "--no-data")
    assert proc.stdout.strip() == "pushed 2 new run(s) and 0 data object(s); 0 already on origin"
    proc = run_gitexp(mine, "push", "--no-data")
    assert proc.stdout.strip() == "pushed 0 new run(s) and 0 data object(s); 2 already on origin"
    # a teammate has another run named b
    assert run_gitexp(theirs, *train("-n", "b", "-S", "seed=9")).returncode == 0
    assert run_gitexp(theirs, *train("-n", "c")).returncode == 0
    proc = run_gitexp(theirs, "push", "--no-data")
    assert proc.returncode == 5
    assert proc.stderr.strip() == (
        "gitexp: error: origin has other runs named b: nothing was pushed (rename yours with "
        "'gitexp rename', or push the others with --skip-existing)"
    )
    proc = run_gitexp(theirs, "push", "--no-data", "--skip-existing")
    assert proc.returncode == 0 and "left out run 'b'" in proc.stderr
    assert "pushed 1 new run(s)" in proc.stdout
    # tags travel with pull; a run removed here (and there) stays removed
    proc = run_gitexp(theirs, "pull", "--no-data")
    assert "pulled 1 new run(s)" in proc.stdout  # a; b differs and is kept
    assert {r["name"]: r["tags"] for r in show_json_in(theirs)}["a"] == {"stage": "prod"}
    assert run_gitexp(mine, "remove", "a").returncode == 0
    proc = run_gitexp(mine, "pull", "--no-data")
    assert "left out 1 run(s) removed here (a)" in proc.stderr
    assert "a" not in {r["name"] for r in show_json_in(mine)}
    assert run_gitexp(mine, "pull", "origin", "a", "--no-data").returncode == 0  # on purpose
    assert "a" in {r["name"] for r in show_json_in(mine)}
    proc = run_gitexp(mine, "remove", "a", "--remote", "origin")
    assert proc.stdout.strip() == "removed run 'a' here and on origin"
    assert git(mine, "ls-remote", str(origin), "refs/runs/a") == ""


def show_json_in(repo: Path) -> list[dict]:
    proc = run_gitexp(repo, "show", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_choosing_columns_and_formats(repo: Path, gitexp) -> None:
    assert gitexp(*train("-n", "r1")).returncode == 0
    header = lambda *args: gitexp("show", *args).stdout.splitlines()[0].split()  # noqa: E731
    assert header("--params-only")[6:] == ["train.lr", "train.epochs", "seed"]
    assert header("--metrics-only")[6:] == ["acc", "loss"]
    assert header("--columns", "train.*")[6:] == ["train.lr", "train.epochs"]
    assert header("--drop", "train.*", "--drop", "loss")[6:] == ["seed", "acc"]
    assert header("--columns", "metrics.json:*")[6:] == ["acc", "loss"]
    proc = gitexp("show", "--json", "--csv")
    assert proc.returncode == 2 and "cannot be used together" in proc.stderr
    assert gitexp("show", "--params-only", "--metrics-only").returncode == 2


def test_shell_completion_lists_run_names(repo: Path, gitexp) -> None:
    for name in ("alpha", "beta"):
        assert gitexp(*train("-n", name)).returncode == 0
    env = {**os.environ, "_GITEXP_COMPLETE": "bash_complete", "COMP_WORDS": "gitexp show al",
           "COMP_CWORD": "2"}  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "gitexp"], cwd=repo, env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert proc.stdout.split() == ["plain,alpha"]
