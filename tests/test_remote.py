"""Sharing and reproducing runs through a git remote and a DVC remote (rows RP1, RP2, RP5,
RP6, RP7, G5, G8-style safety), with the DVC remote a local directory or S3 served by moto."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import oracle
from conftest import git, make_repo, run_gitexp, show_json

MODEL = "import sys; open('model.bin', 'w').write('weights-' + sys.argv[1])"


def dvc(repo: Path, *args: str) -> None:
    subprocess.run(["dvc", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    return bare


@pytest.fixture
def project(repo: Path, origin: Path, tmp_path: Path) -> Path:
    """A repository with DVC, a local DVC remote, and `origin` as its git remote."""
    assert run_gitexp(repo, "init").returncode == 0
    dvc(repo, "remote", "add", "-d", "store", str(tmp_path / "dvc-store"))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "dvc")
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "-q", "origin", "main")
    return repo


def record_two_runs(repo: Path) -> None:
    for name, lr in (("slow", "0.1"), ("fast", "0.3")):
        proc = run_gitexp(repo, "run", "-n", name, "-S", f"train.lr={lr}", "--out", "model.bin",
                          "--", sys.executable, "-c", f"{MODEL}; exec(open('train.py').read())",
                          name)  # fmt: skip
        assert proc.returncode == 0, proc.stderr


def show_json_in(repo: Path, *args: str) -> list[dict]:
    proc = run_gitexp(repo, "show", "--json", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def clone(origin: Path, where: Path) -> Path:
    git(where.parent, "clone", "-q", "-b", "main", str(origin), str(where))
    return where


def test_end_to_end_push_clone_pull_checkout_reproduce(project: Path, origin: Path, tmp_path):
    record_two_runs(project)
    proc = run_gitexp(project, "push")
    assert proc.returncode == 0, proc.stderr
    assert "pushed 2 new run(s)" in proc.stdout
    other = clone(origin, tmp_path / "other")
    proc = run_gitexp(other, "pull")
    assert proc.returncode == 0, proc.stderr
    assert "pulled 2 new run(s)" in proc.stdout
    assert {
        r["name"]
        for r in show_json(
            lambda *a: run_gitexp(other, *a),
        )
    } == {"slow", "fast"}
    assert run_gitexp(other, "checkout", "fast").returncode == 0
    assert (other / "model.bin").read_text() == "weights-fast"
    git(other, "checkout", "-q", "main")
    before = oracle.take(other)
    proc = run_gitexp(other, "reproduce", "slow", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["verdict"] == "reproduced"
    assert all(m["old"] == m["new"] for m in result["metrics"])
    assert {m["key"] for m in result["metrics"]} == {"acc", "loss"}
    oracle.assert_untouched(other, before)  # the workspace is untouched; one new run
    new = json.loads(git(other, "show", f"refs/runs/{result['run']}:.gitexp/run.json"))
    assert new["reproduces"] == "slow"
    assert git(other, "worktree", "list").count("\n") == 0  # the worktree was removed


def test_reproduce_differs_then_tolerance(project: Path) -> None:
    noisy = ("import json, random; json.dump({'acc': 0.9 + random.random() / 1000}, "
             "open('metrics.json', 'w'))")  # fmt: skip
    assert (
        run_gitexp(project, "run", "-n", "noisy", "--", sys.executable, "-c", noisy).returncode == 0
    )
    proc = run_gitexp(project, "reproduce", "noisy")
    assert proc.returncode == 1
    assert "differs" in proc.stdout
    proc = run_gitexp(project, "reproduce", "noisy", "--tolerance", "0.01", "--keep")
    assert proc.returncode == 0, proc.stdout
    assert "reproduced: noisy-repro-2 re-ran noisy" in proc.stdout
    kept = Path(proc.stdout.split("worktree kept at ")[1].split("\n")[0])
    assert (kept / "metrics.json").exists()
    git(project, "worktree", "remove", "--force", str(kept))  # the test leaves nothing behind
    assert run_gitexp(project, "reproduce", "HEAD").returncode == 2


def test_reproduce_of_a_failing_rerun_says_so_and_compares_nothing(project: Path) -> None:
    code = ("import json, os, sys; json.dump({'acc': 0.9}, open('metrics.json', 'w')); "
            "print('step', 1); sys.exit(int(os.environ.get('FAIL', '0')))")  # fmt: skip
    assert (
        run_gitexp(project, "run", "-n", "flaky", "--", sys.executable, "-c", code).returncode == 0
    )
    proc = run_gitexp(project, "reproduce", "flaky", env={"FAIL": "3"})
    assert proc.returncode == 1
    inputs = json.loads(git(project, "show", "refs/runs/flaky:.gitexp/run.json"))["inputs"]
    assert f"at {inputs} (the inputs of run flaky)" in proc.stderr  # said before it runs
    assert "the re-run failed (exit code 3), so its metrics are not compared" in proc.stdout
    assert "step 1" in proc.stdout  # the end of its log
    assert "failed: flaky-repro-1 re-ran flaky and exited 3" in proc.stdout
    assert " ok" not in proc.stdout  # no metric rows: the metrics are not its own
    result = json.loads(run_gitexp(project, "reproduce", "flaky", "--json",
                                   env={"FAIL": "3"}).stdout)  # fmt: skip
    assert result["verdict"] == "failed" and result["metrics"] == [] and result["exit_code"] == 3


def model_hash(repo: Path, run: str) -> str:
    record = json.loads(git(repo, "show", f"refs/runs/{run}:.gitexp/run.json"))
    return record["data"]["model.bin"]["hash"]


def test_push_stops_when_a_runs_data_is_nowhere(project: Path, origin: Path) -> None:
    record_two_runs(project)
    digest = model_hash(project, "slow")
    (project / ".dvc" / "cache" / "files" / "md5" / digest[:2] / digest[2:]).unlink()  # dvc gc
    proc = run_gitexp(project, "push")
    assert proc.returncode == 5
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert errors == [
        "gitexp: error: nothing was pushed: the data of run 'slow' (model.bin) is in neither the "
        "local DVC cache nor the DVC remote; fetch it with 'gitexp pull', or push the other runs"
    ]
    assert git(project, "ls-remote", str(origin), "refs/runs/*") == ""
    assert run_gitexp(project, "push", "origin", "fast").returncode == 0  # the others can go


def test_push_with_a_failing_dvc_remote_pushes_no_refs(project: Path, origin, tmp_path) -> None:
    record_two_runs(project)
    (tmp_path / "dvc-store").write_text("a file where the DVC remote's folder should be")
    proc = run_gitexp(project, "push")
    assert proc.returncode == 5
    assert "no run was pushed" in proc.stderr and "Traceback" not in proc.stderr
    assert git(project, "ls-remote", str(origin), "refs/runs/*") == ""


def test_pull_warns_for_each_run_whose_data_the_remote_lacks(project, origin, tmp_path) -> None:
    record_two_runs(project)
    assert run_gitexp(project, "push", "--no-data").returncode == 0
    other = clone(origin, tmp_path / "other")
    proc = run_gitexp(other, "pull")
    assert proc.returncode == 0, proc.stderr
    for name in ("fast", "slow"):
        assert f"run '{name}' has no data here for model.bin: the DVC remote lacks it" in (
            proc.stderr
        )
    assert run_gitexp(project, "push").returncode == 0  # now the data is there too
    proc = run_gitexp(other, "pull", "origin", "slow")  # a run already here gets its data
    assert proc.returncode == 0 and "has no data" not in proc.stderr
    assert "1 data object(s)" in proc.stdout


def test_ctrl_c_outside_a_run_exits_130(project: Path, origin: Path) -> None:
    assert run_gitexp(project, "run", "-n", "r", "--", "true").returncode == 0
    hook, marker, release = origin / "hooks" / "pre-receive", origin / "started", origin / "go"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\nwhile [ ! -e {release} ]; do sleep 0.1; done\n"
                    "exit 1\n")  # fmt: skip
    hook.chmod(0o755)
    proc = subprocess.Popen([sys.executable, "-m", "gitexp", "push", "--no-data"], cwd=project,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal sends Ctrl-C to its foreground
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130
        assert "Traceback" not in stderr
    finally:
        release.touch()


def test_RP1_missing_dvc_remote_pushes_no_refs(repo: Path, origin: Path) -> None:
    assert run_gitexp(repo, "init").returncode == 0
    git(repo, "remote", "add", "origin", str(origin))
    assert run_gitexp(repo, "run", "-n", "m", "--out", "model.bin", "--", sys.executable, "-c",
                      MODEL, "1").returncode == 0  # fmt: skip
    proc = run_gitexp(repo, "push")
    assert proc.returncode == 5
    assert "no DVC remote is configured" in proc.stderr and "--no-data" in proc.stderr
    assert git(repo, "ls-remote", str(origin), "refs/runs/*") == ""
    proc = run_gitexp(repo, "push", "--no-data")
    assert proc.returncode == 0
    assert "refs/runs/m" in git(repo, "ls-remote", str(origin), "refs/runs/*")


def test_RP2_rejected_push_keeps_everything(project: Path, origin: Path) -> None:
    hook = origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'runs are not welcome here' >&2\nexit 1\n")
    hook.chmod(0o755)
    record_two_runs(project)
    before = oracle.take(project)
    proc = run_gitexp(project, "push")
    assert proc.returncode == 5
    assert "refused the push" in proc.stderr and "runs are not welcome here" in proc.stderr
    assert git(project, "ls-remote", str(origin), "refs/runs/*") == ""  # atomic: none
    oracle.assert_untouched(project, before, max_new_runs=0)


def test_RP5_RP6_same_name_different_runs_are_never_clobbered(project, origin, tmp_path) -> None:
    record_two_runs(project)
    assert run_gitexp(project, "push").returncode == 0
    other = clone(origin, tmp_path / "other")
    proc = run_gitexp(other, "run", "-n", "slow", "--", "true")  # same name, another run
    assert proc.returncode == 0
    mine = git(other, "rev-parse", "refs/runs/slow")
    proc = run_gitexp(other, "pull")
    assert proc.returncode == 0
    assert "run 'slow' differs from origin's; kept the local one" in proc.stderr
    assert git(other, "rev-parse", "refs/runs/slow") == mine
    theirs = git(other, "ls-remote", str(origin), "refs/runs/slow").split()[0]
    proc = run_gitexp(other, "push", "origin", "slow")
    assert proc.returncode == 5  # not a fast-forward: never forced
    assert git(other, "ls-remote", str(origin), "refs/runs/slow").split()[0] == theirs


@pytest.mark.parametrize(
    "remote", ["--upload-pack=touch pwn", "ext::sh -c touch% pwn", "nowhere", "-o"]
)
def test_RP7_remote_injection_is_refused(project: Path, remote: str) -> None:
    for command in ("push", "pull"):
        proc = run_gitexp(project, command, "--", remote)
        assert proc.returncode == 2, proc.stderr
        assert "remote" in proc.stderr
    assert not (project / "pwn").exists()


def test_unreachable_remote_is_a_remote_error(project: Path, tmp_path: Path) -> None:
    assert run_gitexp(project, "run", "-n", "r", "--", "true").returncode == 0
    proc = run_gitexp(project, "push", f"file://{tmp_path}/missing.git", "--no-data")
    assert proc.returncode == 5
    errors = [line for line in proc.stderr.splitlines() if line.startswith("gitexp: error:")]
    assert len(errors) == 1 and "Could not read from remote repository" in errors[0]
    assert "Traceback" not in proc.stderr
    assert git(project, "rev-parse", "refs/runs/r")


def test_G5_shallow_clone_runs_shows_and_diffs(project: Path, origin: Path, tmp_path) -> None:
    git(project, "commit", "-q", "--allow-empty", "-m", "second")
    git(project, "push", "-q", "origin", "main")
    shallow = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{origin}", str(shallow))
    proc = run_gitexp(shallow, "run", "-n", "s", "-S", "seed=4", "--", sys.executable, "train.py")
    assert proc.returncode == 0, proc.stderr
    head = git(shallow, "rev-parse", "HEAD")
    assert git(shallow, "rev-parse", "refs/runs/s^") == head
    (listed,) = show_json_in(shallow)
    assert listed["name"] == "s" and listed["base"] == head
    assert listed["params"]["params.yaml"]["seed"] == 4
    diff = json.loads(run_gitexp(shallow, "diff", "HEAD", "s", "--json").stdout)
    assert diff["params"]["params.yaml"]["seed"] == {"old": 1, "new": 4, "diff": 3}
    proc = run_gitexp(shallow, "push", "--no-data")
    assert proc.returncode == 0, proc.stderr
    remote = git(project, "ls-remote", str(origin), "refs/runs/s").split()
    assert remote[0] == git(shallow, "rev-parse", "refs/runs/s")


# --- S3 served by moto on 127.0.0.1 ---------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An S3 endpoint on 127.0.0.1 (moto in server mode) with a bucket 'runs'."""
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    pytest.importorskip("dvc_s3")
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="runs")
    try:
        yield endpoint
    finally:
        server.stop()


def test_push_and_pull_data_through_s3(tmp_path: Path, origin: Path, s3: str) -> None:
    repo = make_repo(tmp_path / "s3repo")
    assert run_gitexp(repo, "init").returncode == 0
    dvc(repo, "remote", "add", "-d", "s3", "s3://runs/store")
    dvc(repo, "remote", "modify", "s3", "endpointurl", s3)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "s3 remote")
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "-q", "origin", "main")
    record_two_runs(repo)
    proc = run_gitexp(repo, "push")
    assert proc.returncode == 0, proc.stderr
    assert "2 data object(s)" in proc.stdout
    other = clone(origin, tmp_path / "s3clone")
    proc = run_gitexp(other, "pull")
    assert proc.returncode == 0, proc.stderr
    assert "2 data object(s)" in proc.stdout
    assert run_gitexp(other, "checkout", "slow").returncode == 0
    assert (other / "model.bin").read_text() == "weights-slow"


def test_W5_hostile_tree_from_a_remote_is_rejected(origin: Path, tmp_path: Path) -> None:
    author = make_repo(tmp_path / "author")
    git(author, "push", "-q", str(origin), "main")
    blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=author, input=b"evil",
                          capture_output=True, check=True).stdout.decode().strip()  # fmt: skip
    tree = subprocess.run(["git", "mktree"], cwd=author, input=f"100644 blob {blob}\t.git\n",
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    commit = git(author, "commit-tree", tree, "-p", "HEAD", "-m", "evil")
    git(author, "push", "-q", str(origin), f"{commit}:refs/runs/evil")
    victim = tmp_path / "victim"
    git(tmp_path, "clone", "-q", "-b", "main", f"file://{origin}", str(victim))
    proc = run_gitexp(victim, "pull", "--no-data")
    assert proc.returncode == 5
    assert "hasDotgit" in proc.stderr
    assert git(victim, "for-each-ref", "refs/runs/") == ""


def test_RP3_interrupted_push_changes_nothing_and_a_retry_works(project: Path, origin: Path):
    record_two_runs(project)
    hook = origin / "hooks" / "pre-receive"
    marker = origin / "push-started"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\nsleep 30\n")
    hook.chmod(0o755)
    proc = subprocess.Popen([sys.executable, "-m", "gitexp", "push"], cwd=project,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert git(project, "ls-remote", str(origin), "refs/runs/*") == ""
    hook.unlink()
    retry = run_gitexp(project, "push")
    assert retry.returncode == 0, retry.stderr
    assert len(git(project, "ls-remote", str(origin), "refs/runs/*").splitlines()) == 2
    assert subprocess.run(["git", "fsck"], cwd=origin, capture_output=True).returncode == 0
    assert run_gitexp(project, "push").returncode == 0  # idempotent
