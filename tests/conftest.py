"""Hermetic fixtures: a fixed HOME and git identity, and real temporary git repositories."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from browser import browser, mermaid  # noqa: F401 - session fixtures: one Chromium for all

GITEXP = [sys.executable, "-m", "gitexp"]

# The experiment every test repository carries: reads params.yaml, writes metrics.json,
# and leaves a marker so tests can tell whether the command ran at all.
TRAIN_SCRIPT = textwrap.dedent(
    """\
    import json, os, sys, time
    import yaml
    params = yaml.safe_load(open("params.yaml"))
    open("started", "w").write("1")
    if os.environ.get("SLEEP"):
        time.sleep(float(os.environ["SLEEP"]))
    lr = params["train"]["lr"]
    json.dump({"acc": round(1 - lr, 6), "loss": lr * 2}, open("metrics.json", "w"))
    print("trained with lr", lr)
    sys.exit(int(os.environ.get("EXIT", "0")))
    """
)
PARAMS = textwrap.dedent(
    """\
    # test params
    train:
      lr: 0.1   # learning rate
      epochs: 3
    seed: 1
    """
)
OUTPUTS = frozenset({"metrics.json", "started"})


def git(repo: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {args} failed: {proc.stderr}")
    return proc.stdout.strip()


@pytest.fixture(autouse=True)
def hermetic(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    return isolate(tmp_path_factory.mktemp("home"), monkeypatch)


def isolate(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fixed HOME and git identity; no GITEXP_ or GIT_DIR-like variables from outside."""
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Test User\n\temail = test@example.com\n"
        "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n"
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    # As in an activated virtualenv: the venv's scripts (dvc, gitexp) come first on PATH.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
    for name in list(os.environ):
        if name.startswith("GITEXP_") or name in ("GIT_DIR", "GIT_INDEX_FILE", "GIT_WORK_TREE"):
            monkeypatch.delenv(name)
    return home


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q")
    (path / "params.yaml").write_text(PARAMS)
    (path / "train.py").write_text(TRAIN_SCRIPT)
    (path / ".gitignore").write_text("/.gitexp/\n__pycache__/\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


Runner = Callable[..., subprocess.CompletedProcess[str]]


def run_gitexp(
    repo: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [*GITEXP, *args], cwd=repo, capture_output=True, text=True, env=full_env, timeout=timeout
    )


@pytest.fixture
def gitexp(repo: Path) -> Runner:
    """Runs the real CLI in a subprocess inside the test repository."""

    def call(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:  # fmt: skip
        return run_gitexp(cwd or repo, *args, env=env, timeout=timeout)

    return call


def train(*extra: str) -> list[str]:
    """`gitexp run` arguments that run the test experiment."""
    return ["run", *extra, "--", sys.executable, "train.py"]


def show_json(gitexp: Runner, *args: str) -> list[dict]:
    proc = gitexp("show", "--json", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def run_file(repo: Path, run: str, path: str) -> str:
    return git(repo, "show", f"refs/runs/{run}:{path}")
