"""Datasets and artifacts through DVC (issue rows G7, and the data side of run and diff)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import oracle
from conftest import git, run_file

WRITE_MODEL = "open('model.bin', 'w').write('weights-1')"


@pytest.fixture
def dvc_repo(repo: Path, gitexp) -> Path:
    assert gitexp("init").returncode == 0
    data = repo / "data"
    data.mkdir()
    for name in ("a", "b"):
        (data / name).write_text(f"{name}\n")
    subprocess.run(["dvc", "add", "-q", "data"], cwd=repo, check=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "data")
    return repo


def cache_file(repo: Path, digest: str) -> Path:
    return repo / ".dvc" / "cache" / "files" / "md5" / digest[:2] / digest[2:]


def test_out_goes_to_dvc_cache_and_only_its_pointer_to_git(dvc_repo: Path, gitexp) -> None:
    before = oracle.take(dvc_repo)
    proc = gitexp("run", "-n", "m1", "--out", "model.bin", "--", sys.executable, "-c", WRITE_MODEL)
    assert proc.returncode == 0, proc.stderr
    oracle.assert_untouched(dvc_repo, before, frozenset({"model.bin"}))
    files = git(dvc_repo, "ls-tree", "-r", "--name-only", "refs/runs/m1").splitlines()
    assert "model.bin" not in files and "model.bin.dvc" in files
    pointer = run_file(dvc_repo, "m1", "model.bin.dvc")
    digest = hashlib.md5(b"weights-1").hexdigest()
    assert f"md5: {digest}" in pointer and "path: model.bin" in pointer
    assert cache_file(dvc_repo, digest).read_bytes() == b"weights-1"
    assert "/model.bin" in run_file(dvc_repo, "m1", ".gitignore").splitlines()
    record = json.loads(run_file(dvc_repo, "m1", ".gitexp/run.json"))
    assert record["data"]["model.bin"] == {"hash": digest, "size": 9}
    assert record["data"]["data"]["nfiles"] == 2
    assert not (dvc_repo / "model.bin.dvc").exists()  # the workspace is not written


def test_outs_from_configuration_and_directories(dvc_repo: Path, gitexp) -> None:
    (dvc_repo / "gitexp.yaml").write_text("outs: [models]\n")
    write = "import os; os.makedirs('models', exist_ok=True); open('models/m', 'w').write('x')"
    assert gitexp("run", "-n", "cfg", "--", sys.executable, "-c", write).returncode == 0
    pointer = run_file(dvc_repo, "cfg", "models.dvc")
    assert ".dir" in pointer and "nfiles: 1" in pointer
    assert "models/m" not in git(dvc_repo, "ls-tree", "-r", "--name-only", "refs/runs/cfg")


def test_tracked_data_changed_by_the_command_is_committed(dvc_repo: Path, gitexp) -> None:
    old_pointer = (dvc_repo / "data.dvc").read_text()
    before = oracle.take(dvc_repo, frozenset({"data"}))
    write = "open('data/c', 'w').write('c\\n')"
    assert gitexp("run", "-n", "more", "--", sys.executable, "-c", write).returncode == 0
    oracle.assert_untouched(dvc_repo, before, frozenset({"data"}))
    assert (dvc_repo / "data.dvc").read_text() == old_pointer
    new_pointer = run_file(dvc_repo, "more", "data.dvc")
    assert new_pointer != old_pointer and "nfiles: 3" in new_pointer
    got = json.loads(gitexp("diff", "HEAD", "more", "--json").stdout)["data"]
    assert got["data"]["added"] == 1 and got["data"]["removed"] == 0
    assert got["data"]["old"]["nfiles"] == 2 and got["data"]["new"]["nfiles"] == 3
    table = gitexp("diff", "HEAD", "more").stdout
    assert "+1 -0 ~0" in table


def test_diff_data_json_with_null_for_untracked_side(dvc_repo: Path, gitexp) -> None:
    assert gitexp("run", "-n", "m", "--out", "model.bin", "--", sys.executable, "-c",
                  WRITE_MODEL).returncode == 0  # fmt: skip
    got = json.loads(gitexp("diff", "HEAD", "m", "--json").stdout)["data"]
    assert got == {"model.bin": {"old": None, "new": {"hash": hashlib.md5(b"weights-1")
                                                     .hexdigest(), "size": 9}}}  # fmt: skip


def test_G7_large_new_file_is_left_out_and_the_run_still_lands(repo: Path, gitexp) -> None:
    """A finished command is always recorded: without DVC a file too large for git is left
    out, named in a warning and in the record (no blob is written for it)."""
    before = oracle.take(repo)
    big = "open('big.bin', 'wb').truncate(11_000_000); print('trained')"
    proc = gitexp("run", "-n", "big", "-S", "seed=3", "--", sys.executable, "-c", big)
    assert proc.returncode == 0, proc.stderr
    assert "left big.bin out of the run (11 MB, over the 10 MB limit for git" in proc.stderr
    oracle.assert_untouched(repo, before, frozenset({"big.bin"}))
    files = git(repo, "ls-tree", "-r", "--name-only", "refs/runs/big").splitlines()
    assert "big.bin" not in files
    record = json.loads(run_file(repo, "big", ".gitexp/run.json"))
    assert record["skipped"] == ["big.bin"] and record["params"]["params.yaml"]["seed"] == 3
    sizes = subprocess.run(["git", "cat-file", "--batch-all-objects", "--batch-check"],
                           cwd=repo, capture_output=True, text=True).stdout  # fmt: skip
    assert not [line for line in sizes.splitlines() if int(line.split()[2]) > 10_000_000]
    (repo / "gitexp.yaml").write_text("max_file_size: 20MB\n")
    assert gitexp("run", "-n", "big2", "--", sys.executable, "-c", big).returncode == 0
    assert "big.bin" in git(repo, "ls-tree", "-r", "--name-only", "refs/runs/big2")


def test_G7_with_dvc_a_large_new_file_goes_to_dvcs_cache(dvc_repo: Path, gitexp) -> None:
    big = "import os; open('big.bin', 'wb').write(os.urandom(11_000_000))"
    proc = gitexp("run", "-n", "big", "--", sys.executable, "-c", big)
    assert proc.returncode == 0, proc.stderr
    assert "stored big.bin in DVC's cache (11 MB, over the 10 MB limit for git" in proc.stderr
    pointer = run_file(dvc_repo, "big", "big.bin.dvc")
    digest = hashlib.md5((dvc_repo / "big.bin").read_bytes()).hexdigest()
    assert f"md5: {digest}" in pointer and cache_file(dvc_repo, digest).exists()
    assert "/big.bin" in run_file(dvc_repo, "big", ".gitignore")
    assert not (dvc_repo / "big.bin.dvc").exists()  # the workspace gets no new files


def test_metrics_kept_in_dvc_cache_are_read_from_it(dvc_repo: Path, gitexp) -> None:
    (dvc_repo / "dvc.yaml").write_text(
        f"stages:\n  train:\n    cmd: {sys.executable} train.py\n    deps: [train.py]\n"
        "    params: [train.lr]\n    metrics: [metrics.json]\n"
    )
    git(dvc_repo, "add", "-A")
    git(dvc_repo, "commit", "-q", "-m", "stage")
    assert gitexp("run", "-n", "cached", "-S", "train.lr=0.25").returncode == 0
    assert "metrics.json" not in git(dvc_repo, "ls-tree", "--name-only", "refs/runs/cached")
    shown = json.loads(gitexp("show", "--json", "cached~0").stdout)[0]  # read from the tree
    assert shown["metrics"] == {"metrics.json": {"acc": 0.75, "loss": 0.5}}
    diff = json.loads(gitexp("diff", "HEAD", "cached", "--json").stdout)
    assert diff["metrics"]["metrics.json"]["acc"] == {"old": None, "new": 0.75, "diff": None}
    shutil.rmtree(dvc_repo / ".dvc" / "cache")
    proc = gitexp("diff", "HEAD", "cached", "--json")
    assert proc.returncode == 0
    assert "metrics.json is kept by DVC and its content is not in the local cache" in proc.stderr


def test_outside_output_is_refused(repo: Path, gitexp, tmp_path: Path) -> None:
    proc = gitexp("run", "--out", str(tmp_path / "elsewhere"), "--", "true")
    assert proc.returncode == 2 and "is outside the repository" in proc.stderr
    proc = gitexp("run", "--out", ".git/config", "--", "true")
    assert proc.returncode == 2


def test_out_without_dvc_says_how_to_set_it_up_before_running(repo: Path, gitexp) -> None:
    proc = gitexp("run", "--out", "model.bin", "--", sys.executable, "-c", WRITE_MODEL)
    assert proc.returncode == 2
    assert "run 'gitexp init' first" in proc.stderr
    assert not (repo / "model.bin").exists()  # the command did not run
    assert git(repo, "for-each-ref", "refs/runs/") == ""


def test_G8_secret_looking_untracked_files_are_left_out(repo: Path, gitexp) -> None:
    (repo / ".env").write_text("OPENAI_API_KEY=sk-test-1\n")
    (repo / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (repo / "creds.json").write_text('{"type": "service_account", "private_key": "x"}\n')
    (repo / "notes.txt").write_text("fine\n")
    proc = gitexp("run", "-n", "g8", "--", "true")
    assert proc.returncode == 0, proc.stderr
    files = git(repo, "ls-tree", "-r", "--name-only", "refs/runs/g8").splitlines()
    assert "notes.txt" in files
    for secret in (".env", "id_rsa", "creds.json"):
        assert secret not in files
        assert f"left {secret} out of the run: it looks like a secret" in proc.stderr


def test_R3_dvc_cache_on_a_full_disk_records_no_run(dvc_repo: Path, gitexp, tmp_path) -> None:
    small = tmp_path / "small-cache"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)],
                             capture_output=True)  # fmt: skip
    if mounted.returncode != 0:
        if os.environ.get("CI"):  # CI runs as root: this row must run there
            pytest.fail(f"could not mount a 2 MB tmpfs under CI: {mounted.stderr!r}")
        pytest.skip("mounting a 2 MB tmpfs needs root")
    try:
        (dvc_repo / ".dvc" / "config.local").write_text(f"[cache]\n    dir = {small}\n")
        before = oracle.take(dvc_repo, frozenset({"model.bin"}))
        write = "import os; open('model.bin', 'wb').write(os.urandom(5_000_000))"
        proc = gitexp("run", "-n", "full", "--out", "model.bin", "-S", "seed=3", "--",
                      sys.executable, "-c", write)  # fmt: skip
        assert proc.returncode in (3, 4), proc.stderr
        assert "No space left on device" in proc.stderr
        assert "could not store 'model.bin' in DVC's cache" in proc.stderr
        assert "Traceback" not in proc.stderr
        after = oracle.take(dvc_repo, frozenset({"model.bin"}))
        assert after.refs == before.refs  # no run whose pointer names a missing object
        assert after.worktree == before.worktree  # the params file is back
    finally:
        subprocess.run(["umount", str(small)], capture_output=True)
