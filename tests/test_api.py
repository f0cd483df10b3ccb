"""The Python tracking API: logging, auto-commit, joining `gitexp run`, reading runs back,
crash safety, environment capture and autologging."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import oracle
from conftest import git, run_file, run_gitexp


def python(repo: Path, code: str, env: dict[str, str] | None = None, **kwargs):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=repo,
                          capture_output=True, text=True, env=full_env, **kwargs)  # fmt: skip


LOOP = """
import gitexp
with gitexp.start_run(name="api", params={"train": {"lr": 0.1}}, tags={"team": "vision"}):
    for step in range(5):
        gitexp.log_metric("loss", 1 / (step + 1), step=step)
        gitexp.log_metrics({"acc": step / 10}, step=step)
    gitexp.set_tag("stage", "final")
    gitexp.log_param("seed", 7)
    gitexp.log_dict({"classes": [0, 1]}, "labels.json")
    gitexp.log_text("a small note", "notes.txt")
"""


def test_with_block_commits_a_run_like_gitexp_run(repo: Path) -> None:
    before = oracle.take(repo)
    proc = python(repo, LOOP)
    assert proc.returncode == 0, proc.stderr
    added = oracle.assert_untouched(repo, before, frozenset({"dvclive"}))
    assert list(added) == ["refs/runs/api"]
    record = json.loads(run_file(repo, "api", ".gitexp/run.json"))
    assert record["status"] == "success"
    assert record["tags"] == {"team": "vision", "stage": "final"}
    assert record["params"]["dvclive/params.yaml"] == {"train.lr": 0.1, "seed": 7}
    assert record["metrics"]["dvclive/metrics.json"] == {"loss": 0.2, "acc": 0.4}
    assert git(repo, "rev-parse", "refs/runs/api^") == before.head
    history = run_file(repo, "api", "dvclive/plots/metrics/loss.tsv").splitlines()
    assert history[0] == "timestamp\tstep\tloss" and len(history) == 6  # DVCLive's columns
    assert history[1].split("\t")[1:] == ["0", "1.0"]
    assert json.loads(run_file(repo, "api", "dvclive/artifacts/labels.json")) == {
        "classes": [0, 1]
    }  # fmt: skip
    environment = json.loads(run_file(repo, "api", ".gitexp/environment.json"))
    assert record["python"] and environment["cpu"]["count"] >= 1
    assert "pyyaml" in environment["packages"]


def test_reading_runs_back(repo: Path) -> None:
    assert python(repo, LOOP).returncode == 0
    assert python(repo, LOOP.replace('"api"', '"api-2"').replace("0.1", "0.3")).returncode == 0
    proc = python(repo, """
        import json, gitexp
        rows = gitexp.search_runs("params.train.lr > 0.2", order_by="metrics.acc DESC")
        rows = rows.to_dict("records")
        run = gitexp.get_run("api")
        history = [m.value for m in gitexp.get_metric_history("api", "loss")]
        print(json.dumps({"rows": rows, "metrics": run.data.metrics, "history": history,
                          "env": "pyyaml" in run.record["packages"],
                          "diff": gitexp.diff("api", "api-2")}, default=str))
    """)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [r["run_id"] for r in out["rows"]] == ["api-2"]
    row = out["rows"][0]
    assert row["params.train.lr"] == "0.3" and row["tags.team"] == "vision"  # MLflow: strings
    assert row["status"] == "FINISHED" and row["start_time"] <= row["end_time"]
    assert out["history"] == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert out["metrics"]["acc"] == 0.4 and out["env"]  # the record with where it ran
    assert out["diff"]["params"]["dvclive/params.yaml"]["train.lr"] == {
        "old": 0.1,
        "new": 0.3,
        "diff": 0.3 - 0.1,
    }


def test_inside_gitexp_run_the_api_joins_the_outer_run(repo: Path) -> None:
    (repo / "job.py").write_text(textwrap.dedent(LOOP))
    proc = run_gitexp(repo, "run", "-n", "outer", "--", sys.executable, "job.py")
    assert proc.returncode == 0, proc.stderr
    refs = git(repo, "for-each-ref", "--format=%(refname)", "refs/runs/").splitlines()
    assert refs == ["refs/runs/outer"]  # one commit, not two
    record = json.loads(run_file(repo, "outer", ".gitexp/run.json"))
    assert record["metrics"]["dvclive/metrics.json"] == {"loss": 0.2, "acc": 0.4}
    assert record["tags"] == {"team": "vision", "stage": "final"}


def test_exception_marks_the_run_failed_and_is_raised_again(repo: Path) -> None:
    proc = python(
        repo,
        """
        import gitexp
        with gitexp.start_run(name="boom"):
            gitexp.log_metric("loss", 1.0)
            raise ValueError("diverged")
    """,
    )
    assert proc.returncode == 1 and "ValueError: diverged" in proc.stderr
    record = json.loads(run_file(repo, "boom", ".gitexp/run.json"))
    assert record["status"] == "failed"
    assert "ValueError: diverged" in run_file(repo, "boom", ".gitexp/run.log")


def test_nested_runs_need_nested_true_and_link_to_their_parent(repo: Path) -> None:
    proc = python(
        repo,
        """
        import gitexp
        with gitexp.start_run(name="parent"):
            try:
                gitexp.start_run(name="child")
            except Exception as exc:
                print("refused:", exc)
            with gitexp.start_run(name="child", nested=True):
                gitexp.log_metric("x", 1)
    """,
    )
    assert proc.returncode == 0, proc.stderr
    assert "refused: run 'parent' is already active" in proc.stdout
    child = json.loads(run_file(repo, "child", ".gitexp/run.json"))
    assert child["parent"] == "parent"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ('gitexp.log_metric("acc", "high")', "metric 'acc' must be a number, not str"),
        ('gitexp.log_metric("bad\\nkey", 1)', "invalid metric name"),
        ('gitexp.log_param("../x", 1)', "invalid param name"),
    ],
)
def test_bad_values_are_refused_clearly(repo: Path, call: str, message: str) -> None:
    proc = python(repo, f"import gitexp\nwith gitexp.start_run(name='bad'):\n    {call}\n")
    assert proc.returncode == 1 and message in proc.stderr
    record = json.loads(run_file(repo, "bad", ".gitexp/run.json"))
    assert record["status"] == "failed"
    json.loads(run_file(repo, "bad", "dvclive/metrics.json"))  # never a corrupt file


def test_nan_and_infinity_are_stored(repo: Path) -> None:
    code = "import gitexp\nwith gitexp.start_run(name='odd'):\n"
    code += (
        "    gitexp.log_metric('loss', float('nan'))\n    gitexp.log_metric('g', float('inf'))\n"
    )
    assert python(repo, code).returncode == 0
    shown = json.loads(run_gitexp(repo, "show", "--json", "odd").stdout)[0]
    assert shown["metrics"]["dvclive/metrics.json"] == {"loss": "NaN", "g": "Infinity"}


def test_logging_is_cheap() -> None:
    import gitexp.tracking.fluent as tracking

    run = tracking.ActiveRun("cheap", None, None, None, str(Path(os.getcwd()) / "unused"), None)
    start = time.perf_counter()
    for step in range(100_000):
        run.log_metric("loss", step * 0.5, step=step)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"100,000 log_metric calls took {elapsed:.2f} s"
    tracking._active.clear()


def test_sigkill_keeps_what_was_flushed(repo: Path) -> None:
    code = """
        import time, gitexp, gitexp.tracking.fluent
        gitexp.tracking.fluent.FLUSH_SECONDS = 0.05
        with gitexp.start_run(name="killed"):
            for step in range(10_000_000):
                gitexp.log_metric("loss", 1.0 / (step + 1), step=step)
                if step == 50:
                    time.sleep(0.2)
                    gitexp.log_metric("loss", 0.5, step=51)
                    open("flushed", "w").close()
                    time.sleep(60)
    """
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=repo)
    deadline = time.monotonic() + 30
    while not (repo / "flushed").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rows = (repo / "dvclive" / "plots" / "metrics" / "loss.tsv").read_text().splitlines()
    assert rows[0] == "timestamp\tstep\tloss" and len(rows) >= 52
    assert json.loads((repo / "dvclive" / "metrics.json").read_text())["loss"] == 0.5


def test_environment_diff_after_a_package_version_change(repo: Path, tmp_path: Path) -> None:
    def fake_package(version: str) -> Path:
        site = tmp_path / f"site-{version}"
        info = site / f"fakepkg-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: fakepkg\nVersion: {version}\n"
        )
        return site

    for name, version in (("old-env", "1.0"), ("new-env", "2.0")):
        env = {"PYTHONPATH": str(fake_package(version))}
        assert run_gitexp(repo, "run", "-n", name, "--", "true", env=env).returncode == 0
    proc = run_gitexp(repo, "diff", "--env", "old-env", "new-env", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["package fakepkg"] == {"old": "1.0", "new": "2.0"}
    table = run_gitexp(repo, "diff", "--env", "old-env", "new-env").stdout
    assert "package fakepkg" in table
    assert run_gitexp(repo, "diff", "--env", "old-env").returncode == 2


def test_listed_env_vars_are_recorded_and_secret_ones_never(repo: Path) -> None:
    (repo / "gitexp.yaml").write_text("env: [CUDA_VISIBLE_DEVICES, HF_TOKEN]\n")
    env = {"CUDA_VISIBLE_DEVICES": "0,1", "HF_TOKEN": "hf-secret-1", "OTHER": "x"}
    assert run_gitexp(repo, "run", "-n", "envs", "--", "true", env=env).returncode == 0
    record = json.loads(run_file(repo, "envs", ".gitexp/run.json"))
    assert record["env"] == {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert "hf-secret-1" not in git(repo, "log", "--all", "-p")


def test_sklearn_autolog(repo: Path) -> None:
    pytest.importorskip("sklearn")
    proc = python(
        repo,
        """
        import gitexp
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression
        gitexp.autolog()
        x, y = load_iris(return_X_y=True)
        with gitexp.start_run(name="auto"):
            LogisticRegression(C=0.5, max_iter=500).fit(x, y)
    """,
    )
    assert proc.returncode == 0, proc.stderr
    record = json.loads(run_file(repo, "auto", ".gitexp/run.json"))
    assert record["params"]["dvclive/params.yaml"]["C"] == 0.5
    assert 0.9 < record["metrics"]["dvclive/metrics.json"]["training_score"] <= 1
    assert record["tags"]["estimator_class"] == "LogisticRegression"


def test_import_gitexp_is_light() -> None:
    heavy = "('yaml', 'dvc', 'click', 'pandas')"
    code = f"import sys, gitexp; print(sorted(m for m in {heavy} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "[]"


def test_a_taken_or_invalid_name_fails_before_training(repo: Path) -> None:
    assert python(repo, LOOP).returncode == 0
    for name in ("api", "bad..name"):
        proc = python(
            repo,
            f"""
            import gitexp
            with gitexp.start_run(name={name!r}):
                open("trained", "w").close()
        """,
        )
        assert proc.returncode == 1
        assert "UsageError" in proc.stderr
        assert not (repo / "trained").exists()


def test_a_runs_commit_through_gitpython(repo: Path) -> None:
    """Run.commit is GitPython's view of the run's commit (GitPython, declared, is used here
    and loaded only when asked for)."""
    code = (
        "import sys, gitexp\n"
        "with gitexp.start_run(run_name='gp'):\n"
        "    gitexp.log_metric('acc', 0.5)\n"
        "run = gitexp.get_run('gp')\n"
        "assert 'git' not in {m.split('.')[0] for m in sys.modules}\n"
        "commit = run.commit\n"
        "print(commit.hexsha, commit.parents[0].hexsha, commit.message.splitlines()[0])\n"
        "print(commit.tree['.gitexp']['run.json'].data_stream.read().decode()[:1])\n"
    )
    proc = python(repo, code)
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.splitlines()
    sha, parent, summary = first.split(" ", 2)
    assert sha == git(repo, "rev-parse", "refs/runs/gp")
    assert parent == git(repo, "rev-parse", "HEAD") and summary.startswith("run gp:")
    assert second == "{"
