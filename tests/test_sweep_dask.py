"""A sweep on a real Dask cluster: `dask scheduler` and two `dask worker` processes on
127.0.0.1, each in its own directory and (where mount namespaces work) unable to see the user's
repository, so the snapshot travels as a bundle or through a git remote and the data through
the DVC remote. One worker is killed mid-run: its point runs again elsewhere, and the sweep
ends with exactly one run per point, each as a local run would be."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import oracle
from conftest import GITEXP, git, make_repo, run_file

pytest.importorskip("distributed")

TRAIN = textwrap.dedent(
    """\
    import json, os, time, uuid, yaml
    p = yaml.safe_load(open("params.yaml"))
    if os.environ.get("MARKS"):
        open(os.path.join(os.environ["MARKS"], uuid.uuid4().hex), "w").write(os.getcwd())
    time.sleep(float(os.environ.get("SLEEP", "0")))
    data = open("data.txt").read()
    json.dump({"acc": 1 - p["train"]["lr"], "seed": p["seed"], "data": len(data)},
              open("metrics.json", "w"))
    open("model.bin", "wb").write(f"model {p['seed']}".encode() * 1000)
    """
)
DASK = str(Path(sys.executable).parent / "dask")


def _can_hide() -> bool:
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                           capture_output=True)  # fmt: skip
    return shutil.which("unshare") is not None and probe.returncode == 0


def _start(argv: list[str], cwd: Path, hide: Path | None, env: dict[str, str]) -> subprocess.Popen:
    if hide is not None:  # a tmpfs over the user's directory, in the process's own namespace
        script = 'mount -t tmpfs tmpfs "$1" && shift && exec "$@"'
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                str(hide), *argv]  # fmt: skip
    log = open(cwd / "log", "w")  # noqa: SIM115 - kept open for the process's life
    return subprocess.Popen(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, **env}, start_new_session=True)  # fmt: skip


class Cluster:
    def __init__(self, root: Path, hide: Path | None, marks: Path) -> None:
        self.root = root
        (root / "scheduler").mkdir(parents=True)
        self.file = root / "scheduler" / "scheduler.json"
        self.scheduler = _start(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(self.file)], root / "scheduler", None, {},
        )  # fmt: skip
        self.workers = []
        # w1's runs take a minute (it is killed in one of them), w2's no time
        for name, sleep in (("w1", "60"), ("w2", "0")):
            env = {"MARKS": str(marks), "SLEEP": sleep}
            (root / name).mkdir()
            self.workers.append(_start(
                [DASK, "worker", "--scheduler-file", str(self.file), "--nthreads", "1",
                 "--no-dashboard", "--local-directory", str(root / name), "--name", name],
                root / name, hide, env,
            ))  # fmt: skip
        self.address = self._wait()

    def _wait(self) -> str:
        from distributed import Client

        deadline = time.time() + 60
        while not self.file.exists():
            assert time.time() < deadline and self.scheduler.poll() is None, "no scheduler"
            time.sleep(0.1)
        address = json.loads(self.file.read_text())["address"]
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        return address

    def stop(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Cluster, Path, Path]]:
    user = tmp_path / "user"  # the user's side: repository and DVC remote
    user.mkdir()
    marks = tmp_path / "marks"
    marks.mkdir()
    running = Cluster(tmp_path / "cluster", user if _can_hide() else None, marks)
    try:
        yield running, user, marks
    finally:
        running.stop()


def test_a_sweep_on_dask_survives_a_lost_worker_and_lands_like_a_local_one(cluster) -> None:
    dask, user, marks = cluster
    repo = make_repo(user / "repo")
    (repo / "train.py").write_text(TRAIN)
    (repo / ".gitignore").write_text("/.gitexp/\n/model.bin\n")
    storage = dask.root / "dvc-remote"  # a directory both sides reach, as S3 would be
    subprocess.run([*GITEXP, "init"], cwd=repo, check=True, capture_output=True)
    dvc = str(Path(sys.executable).parent / "dvc")
    subprocess.run([dvc, "remote", "add", "-d", "storage", str(storage)], cwd=repo, check=True)
    (repo / "data.txt").write_text("twelve bytes")
    subprocess.run([dvc, "add", "-q", "data.txt"], cwd=repo, check=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "data")
    before = oracle.take(repo)
    sweep = subprocess.Popen(
        [*GITEXP, "run", "-n", "dk", "-S", "seed=1,2,3,4", "--out", "model.bin", "--cluster",
         dask.address, "--", sys.executable, "train.py"],
        cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.time() + 90
    while len(list(marks.iterdir())) < 2:  # both workers have started a point
        assert time.time() < deadline and sweep.poll() is None, sweep.communicate()
        time.sleep(0.1)
    os.killpg(dask.workers[0].pid, signal.SIGKILL)
    _, err = sweep.communicate(timeout=180)
    assert sweep.returncode == 0, err
    added = oracle.assert_untouched(repo, before, max_new_runs=4)
    assert sorted(added) == [f"refs/runs/dk/seed-{i}" for i in (1, 2, 3, 4)]
    assert len(list(marks.iterdir())) == 5  # the lost point ran again on the other worker
    cwds = {p.read_text() for p in marks.iterdir()}
    assert all(c.startswith(str(dask.root)) for c in cwds), cwds  # on the workers, not here
    head = git(repo, "rev-parse", "HEAD")
    for i in (1, 2, 3, 4):
        name = f"dk/seed-{i}"
        record = json.loads(run_file(repo, name, ".gitexp/run.json"))
        assert record["status"] == "success" and record["overrides"] == [f"seed={i}"]
        assert record["branch"] == "refs/heads/main" and record["author"].startswith("Test User")
        assert git(repo, "rev-parse", f"refs/runs/{name}^") == head
        assert json.loads(run_file(repo, name, "metrics.json")) == {
            "acc": 0.9, "seed": i, "data": 12}  # fmt: skip
        model = record["data"]["model.bin"]["hash"]
        for cache in (repo / ".dvc" / "cache", storage):  # fetched here, pushed there
            assert (cache / "files" / "md5" / model[:2] / model[2:]).read_bytes() == (
                f"model {i}".encode() * 1000)  # fmt: skip
    assert git(repo, "for-each-ref", "refs/gitexp/", "refs/gitexp-fetch/") == ""

    # The same through a git remote both sides reach, with the one worker left.
    remote = dask.root / "remote.git"
    git(dask.root, "init", "-q", "--bare", str(remote))
    git(repo, "remote", "add", "origin", f"file://{remote}")
    proc = subprocess.run(
        [*GITEXP, "run", "-n", "viaremote", "-S", "train.lr=0.5,0.25", "--cluster", dask.address,
         "--cluster-remote", "origin", "--", sys.executable, "train.py"],
        cwd=repo, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(run_file(repo, "viaremote/lr-0.25", "metrics.json"))["acc"] == 0.75

    # Ctrl-C: the run under way on the worker is stopped and recorded as interrupted, the
    # point that had not started is dropped.
    for mark in marks.iterdir():
        mark.unlink()
    wait = "import os, time, uuid; open(os.path.join(os.environ['MARKS'], uuid.uuid4().hex), 'w')"
    stopped = subprocess.Popen(
        [*GITEXP, "run", "-n", "stop", "-S", "seed=1,2", "--cluster", dask.address, "--",
         sys.executable, "-c", f"{wait}; time.sleep(60)"],
        cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.time() + 60
    while not list(marks.iterdir()):
        assert time.time() < deadline and stopped.poll() is None, stopped.communicate()
        time.sleep(0.1)
    os.killpg(stopped.pid, signal.SIGINT)
    _, err = stopped.communicate(timeout=60)
    assert stopped.returncode == 130, err
    assert git(repo, "for-each-ref", "--format=%(refname)", "refs/runs/stop/") == (
        "refs/runs/stop/seed-1")  # fmt: skip
    record = json.loads(run_file(repo, "stop/seed-1", ".gitexp/run.json"))
    assert (record["status"], record["interrupted_by"]) == ("interrupted", "SIGTERM")
    assert git(repo, "for-each-ref", "refs/gitexp/") == ""
