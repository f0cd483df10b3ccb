"""`gitexp show`: listing, sorting, filtering and output formats; odd metric values (M1, M2)."""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import datetime
from pathlib import Path

import pytest

from conftest import git, show_json
from gitexp.core.compare import Entry, select
from gitexp.core.query import evaluate, parse_filter
from gitexp.errors import UsageError


@pytest.fixture
def three_runs(repo: Path, gitexp) -> Path:
    for name, lr in (("r1", "0.1"), ("r2", "0.2"), ("r3", "0.05")):
        proc = gitexp("run", "-n", name, "-S", f"train.lr={lr}", "--", sys.executable, "train.py")
        assert proc.returncode == 0, proc.stderr
    return repo


def test_json_shape(three_runs: Path, gitexp) -> None:
    runs = show_json(gitexp)
    assert [r["name"] for r in runs] == ["r3", "r2", "r1"]  # newest first
    r1 = runs[2]
    assert r1["rev"] == git(three_runs, "rev-parse", "refs/runs/r1")
    assert r1["base"] == git(three_runs, "rev-parse", "HEAD")
    assert r1["status"] == "success"
    assert datetime.fromisoformat(r1["created"]).tzinfo is not None
    assert isinstance(r1["duration"], float)
    assert r1["params"] == {"params.yaml": {"train.lr": 0.1, "train.epochs": 3, "seed": 1}}
    assert r1["metrics"] == {"metrics.json": {"acc": 0.9, "loss": 0.2}}


def test_table_has_a_column_per_param_and_metric(three_runs: Path, gitexp) -> None:
    proc = gitexp("show")
    assert proc.returncode == 0
    header = proc.stdout.splitlines()[0].split()
    assert header == ["run", "rev", "base", "created", "status", "duration", "train.lr",
                      "train.epochs", "seed", "acc", "loss"]  # fmt: skip
    assert len(proc.stdout.splitlines()) == 5


def test_only_changed_hides_equal_columns(three_runs: Path, gitexp) -> None:
    header = gitexp("show", "--only-changed").stdout.splitlines()[0].split()
    assert "train.lr" in header and "acc" in header
    assert "seed" not in header and "train.epochs" not in header
    # tags and messages too: the same sweep tag on every run is no column, one that differs is
    for name in ("r1", "r2", "r3"):
        assert gitexp("tag", name, "sweep=lr").returncode == 0
    assert "tags" in gitexp("show").stdout.splitlines()[0].split()
    assert "tags" not in gitexp("show", "--only-changed").stdout.splitlines()[0].split()
    assert gitexp("tag", "r2", "best=yes").returncode == 0
    assert gitexp("note", "r2", "keep").returncode == 0
    header = gitexp("show", "--only-changed").stdout.splitlines()[0].split()
    assert "tags" in header and "message" in header


def test_sort_filter_limit(three_runs: Path, gitexp) -> None:
    assert [r["name"] for r in show_json(gitexp, "--sort-by", "acc")] == ["r2", "r1", "r3"]
    assert [r["name"] for r in show_json(gitexp, "--sort-by", "acc", "--desc")] == [
        "r3", "r1", "r2"
    ]  # fmt: skip
    picked = show_json(gitexp, "--filter", "acc > 0.85 and train.lr <= 0.1")
    assert sorted(r["name"] for r in picked) == ["r1", "r3"]
    # each of r2 and r3 passes one side only: `and` needs both
    picked = show_json(gitexp, "--filter", "acc > 0.85 and train.lr >= 0.1")
    assert [r["name"] for r in picked] == ["r1"]
    picked = show_json(gitexp, "--filter", "acc > 0.85 or train.lr >= 0.1")
    assert sorted(r["name"] for r in picked) == ["r1", "r2", "r3"]
    picked = show_json(gitexp, "--filter", "status == 'failed' or (loss > 0.3)")
    assert [r["name"] for r in picked] == ["r2"]
    assert len(show_json(gitexp, "--limit", "1")) == 1
    assert show_json(gitexp, "--filter", "params.yaml:train.lr == 0.2")[0]["name"] == "r2"


def test_named_runs_and_revisions(three_runs: Path, gitexp) -> None:
    got = show_json(gitexp, "r1", "HEAD", "r2~1")
    assert [r["name"] for r in got] == ["r1", "HEAD", "r2~1"]
    assert got[1]["params"]["params.yaml"]["train.lr"] == 0.1
    assert got[1]["metrics"] == {}
    assert got[2]["rev"] == git(three_runs, "rev-parse", "HEAD")


def test_csv_and_markdown(three_runs: Path, gitexp) -> None:
    rows = list(csv.DictReader(io.StringIO(gitexp("show", "--csv").stdout)))
    assert rows[0]["run"] == "r3" and rows[0]["train.lr"] == "0.05" and rows[0]["acc"] == "0.95"
    assert len(rows[0]["rev"]) == 40
    md = gitexp("show", "--md").stdout.splitlines()
    assert md[0].startswith("| run ") and set(md[1]) <= {"|", "-", ":"}
    assert len(md) == 5


def test_bad_filter_and_keys_are_clear_errors(three_runs: Path, gitexp) -> None:
    for expr, message in [
        ("acc >", "invalid filter"),
        ("__import__('os').system('touch pwned')", "invalid filter"),
        ("nope > 1", "unknown key 'nope'"),
        ("(acc > 1", "a '(' is not closed"),
    ]:
        proc = gitexp("show", "--filter", expr)
        assert proc.returncode == 2, expr
        assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (three_runs / "pwned").exists()
    assert gitexp("show", "--sort-by", "nope").returncode == 2
    proc = gitexp("show", "no-such-run")
    assert proc.returncode == 2 and "unknown run or revision 'no-such-run'" in proc.stderr


def test_no_runs(repo: Path, gitexp) -> None:
    proc = gitexp("show")
    assert proc.returncode == 0 and "no runs" in proc.stdout
    assert show_json(gitexp) == []


def test_M1_M2_nan_infinity_and_strings(repo: Path, gitexp) -> None:
    write = (
        "import json; json.dump({'loss': float('nan'), 'acc': float('inf'), "
        "'grade': 'high', 'ok': True, 'none': None, 'list': [1, 2]}, open('metrics.json', 'w'))"
    )
    assert gitexp("run", "-n", "odd", "--", sys.executable, "-c", write).returncode == 0
    assert gitexp("run", "-n", "plain", "-S", "seed=2", "--", sys.executable, "-c",
                  "import json; json.dump({'loss': 0.5, 'acc': 1}, open('metrics.json', 'w'))"
                  ).returncode == 0  # fmt: skip

    def strict(text: str) -> object:
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))

    runs = strict(gitexp("show", "--json").stdout)
    odd = next(r for r in runs if r["name"] == "odd")["metrics"]["metrics.json"]
    assert odd == {"loss": "NaN", "acc": "Infinity", "grade": "high", "ok": True,
                   "none": None, "list": [1, 2]}  # fmt: skip
    table = gitexp("show").stdout
    assert "nan" in table and "inf" in table and "high" in table
    # NaN sorts last whichever the direction
    assert [r["name"] for r in strict(gitexp("show", "--json", "--sort-by", "loss").stdout)] == [
        "plain", "odd"
    ]  # fmt: skip
    names = [
        r["name"] for r in strict(gitexp("show", "--json", "--sort-by", "loss", "--desc").stdout)
    ]
    assert names == ["plain", "odd"]
    diff = strict(gitexp("diff", "plain", "odd", "--json").stdout)
    assert diff["metrics"]["metrics.json"]["loss"] == {"old": 0.5, "new": "NaN", "diff": None}
    assert diff["metrics"]["metrics.json"]["grade"] == {"old": None, "new": "high", "diff": None}


def test_R6_unreadable_metrics_are_listed_with_an_error(repo: Path, gitexp) -> None:
    bad = "open('metrics.json', 'w').write('{\"acc\": ')"
    proc = gitexp("run", "-n", "broken", "--", sys.executable, "-c", bad)
    assert proc.returncode == 0
    assert "could not read metrics: metrics.json:1:9" in proc.stderr
    runs = show_json(gitexp)
    assert runs[0]["metrics"] == {} and "metrics.json" in runs[0]["errors"]


def test_filter_language_units() -> None:
    values = {"acc": 0.9, "loss": float("nan"), "name": "x", "base.acc": 0.91}
    check = lambda expr: evaluate(parse_filter(expr), values.get)  # noqa: E731
    assert check("acc >= base.acc - 0.015")
    assert not check("acc >= base.acc - 0.005")
    assert check("not loss < 1 and not loss > 1")  # NaN compares false both ways
    assert check("name == 'x' and acc * 2 > 1.7")
    assert not check("name == 'x' and acc > 0.95") and not check("acc > 0.95 and name == 'x'")
    assert check("name == 'y' or acc > 0.5") and not check("name == 'y' or acc > 0.95")
    assert not check("not acc > 0.5") and check("not (acc > 0.5 and name == 'y')")
    assert check("acc - 0.1 < 0.85") and check("-acc < 0") and check("acc / 3 < 0.31")
    assert not check("name > 1")  # a string is never compared with a number
    assert not check("missing == 1")
    for bad in ["acc >", "and", "acc = 1", "acc > 1 1", "import os"]:
        with pytest.raises(UsageError):
            parse_filter(bad)


def test_ambiguous_keys_need_a_file() -> None:
    entries = [
        Entry("a", "1", None, None, None, None, params={"p.yaml": {"lr": 1}},
              metrics={"m.json": {"lr": 2}}),
    ]  # fmt: skip
    with pytest.raises(UsageError, match="ambiguous: write one of"):
        select(entries, sort_by="lr")
    assert select(entries, filter_expr="m.json:lr == 2") == entries
