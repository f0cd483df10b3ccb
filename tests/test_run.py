"""`gitexp run`: what a run commit holds, and that the user's work is never touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import oracle
from conftest import OUTPUTS, PARAMS, git, make_repo, run_file, show_json, train


def test_run_records_a_commit_on_its_own_ref(repo: Path, gitexp) -> None:
    before = oracle.take(repo)
    proc = gitexp(*train("-n", "first", "-S", "train.lr=0.2"))
    assert proc.returncode == 0, proc.stderr
    assert "trained with lr 0.2" in proc.stdout  # output streamed live
    added = oracle.assert_untouched(repo, before, OUTPUTS)
    assert list(added) == ["refs/runs/first"]
    commit = added["refs/runs/first"]
    assert git(repo, "rev-parse", f"{commit}^") == before.head  # parent is the base
    assert "lr: 0.2   # learning rate" in run_file(repo, "first", "params.yaml")
    assert json.loads(run_file(repo, "first", "metrics.json")) == {"acc": 0.8, "loss": 0.4}
    record = json.loads(run_file(repo, "first", ".gitexp/run.json"))
    assert record["status"] == "success" and record["exit_code"] == 0
    assert record["base"] == before.head
    assert record["params"]["params.yaml"]["train.lr"] == 0.2
    assert record["metrics"]["metrics.json"] == {"acc": 0.8, "loss": 0.4}
    assert record["overrides"] == ["train.lr=0.2"]
    assert "trained with lr 0.2" in run_file(repo, "first", ".gitexp/run.log")
    message = git(repo, "log", "-1", "--format=%B", commit)
    assert message.startswith("run first: ")
    assert "Status: success" in message and "Exit-Code: 0" in message
    assert "Duration: " in message
    # The params file on disk has its earlier content back.
    assert (repo / "params.yaml").read_text() == PARAMS


def test_run_captures_uncommitted_and_untracked_files(repo: Path, gitexp) -> None:
    (repo / "train.py").write_text((repo / "train.py").read_text() + "# edited\n")
    (repo / "notes.txt").write_text("untracked\n")
    (repo / "ignored.log").write_text("ignored\n")
    (repo / ".gitignore").write_text((repo / ".gitignore").read_text() + "ignored.log\n")
    assert gitexp(*train("-n", "dirty")).returncode == 0
    assert run_file(repo, "dirty", "train.py").endswith("# edited")
    assert run_file(repo, "dirty", "notes.txt") == "untracked"
    files = git(repo, "ls-tree", "-r", "--name-only", "refs/runs/dirty").splitlines()
    assert "ignored.log" not in files
    assert ".gitexp/run.json" in files


def test_G1_staged_changes_keep_the_index_byte_identical(repo: Path, gitexp) -> None:
    (repo / "staged.txt").write_text("staged\n")
    git(repo, "add", "staged.txt")
    (repo / "staged.txt").write_text("staged then edited\n")
    git(repo, "rm", "-q", "--cached", "params.yaml")
    before = oracle.take(repo)
    cached = git(repo, "diff", "--cached")
    assert gitexp(*train("-n", "g1")).returncode == 0
    oracle.assert_untouched(repo, before, OUTPUTS)
    assert git(repo, "diff", "--cached") == cached
    # The run holds the files as they are on disk.
    assert run_file(repo, "g1", "staged.txt") == "staged then edited"
    assert "lr: 0.1" in run_file(repo, "g1", "params.yaml")


def test_G2_detached_head_stays_detached(repo: Path, gitexp) -> None:
    git(repo, "commit", "-q", "--allow-empty", "-m", "second")
    git(repo, "checkout", "-q", "--detach", "HEAD~1")
    before = oracle.take(repo)
    assert gitexp(*train("-n", "g2")).returncode == 0
    oracle.assert_untouched(repo, before, OUTPUTS)
    assert git(repo, "rev-parse", "refs/runs/g2^") == before.head


def test_G3_repository_without_a_commit(tmp_path: Path, gitexp) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    proc = gitexp("run", "--", "true", cwd=empty)
    assert proc.returncode == 3
    assert "make a first commit" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (empty / ".git" / "gitexp" / "journal").exists()


def test_G4_refuses_during_a_merge(repo: Path, gitexp) -> None:
    git(repo, "checkout", "-q", "-b", "other")
    (repo / "params.yaml").write_text(PARAMS.replace("seed: 1", "seed: 2"))
    git(repo, "commit", "-q", "-am", "other")
    git(repo, "checkout", "-q", "main")
    (repo / "params.yaml").write_text(PARAMS.replace("seed: 1", "seed: 3"))
    git(repo, "commit", "-q", "-am", "main")
    git(repo, "merge", "-q", "other", check=False)
    before = oracle.take(repo)
    proc = gitexp(*train("-n", "g4"))
    assert proc.returncode == 3
    assert "a merge is in progress" in proc.stderr
    assert not (repo / "started").exists()
    oracle.assert_untouched(repo, before, max_new_runs=0)


def test_G9_inherited_git_variables_do_not_redirect_gitexp(repo: Path, tmp_path: Path, gitexp):
    decoy = tmp_path / "decoy"
    git(tmp_path, "init", "-q", str(decoy))
    decoy_before = oracle.take(decoy)
    before = oracle.take(repo)
    env = {"GIT_DIR": str(decoy / ".git"), "GIT_INDEX_FILE": str(decoy / "idx")}
    dump = "import os, json; json.dump(dict(os.environ), open('env.json', 'w'))"
    proc = gitexp("run", "-n", "g9", "--", sys.executable, "-c", dump, env=env)
    assert proc.returncode == 0, proc.stderr
    oracle.assert_untouched(repo, before, frozenset({"env.json"}))
    assert oracle.take(decoy) == decoy_before
    child_env = json.loads((repo / "env.json").read_text())
    # The command sees the user's environment, never gitexp's temporary index.
    assert child_env.get("GIT_INDEX_FILE") == env["GIT_INDEX_FILE"]
    assert child_env["GITEXP_RUN_NAME"] == "g9"


def test_G11_no_git_identity_uses_a_fallback(repo: Path, gitexp, tmp_path: Path) -> None:
    home = tmp_path / "nohome"
    home.mkdir()
    proc = gitexp(*train("-n", "g11"), env={"HOME": str(home), "EMAIL": ""})
    assert proc.returncode == 0, proc.stderr
    assert git(repo, "log", "-1", "--format=%an <%ae>", "refs/runs/g11") == (
        "gitexp <gitexp@localhost>"
    )


def test_G12_user_hooks_never_run(repo: Path, gitexp) -> None:
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\ntouch hook-ran\nexit 1\n")
    hook.chmod(0o755)
    assert gitexp(*train("-n", "g12")).returncode == 0
    assert not (repo / "hook-ran").exists()


def test_G13_command_that_moves_head(repo: Path, gitexp) -> None:
    base = git(repo, "rev-parse", "HEAD")
    proc = gitexp("run", "-n", "g13", "--", "git", "commit", "-q", "--allow-empty", "-m", "user")
    assert proc.returncode == 0, proc.stderr
    assert "HEAD moved" in proc.stderr
    assert git(repo, "rev-parse", "refs/runs/g13^") == base
    assert git(repo, "log", "-1", "--format=%s", "main") == "user"  # the user's commit stays


def test_C6_user_holds_the_index_lock(repo: Path, gitexp) -> None:
    lock = repo / ".git" / "index.lock"
    lock.write_text("")
    proc = gitexp(*train("-n", "c6"))
    assert proc.returncode == 0, proc.stderr
    assert lock.exists() and lock.read_text() == ""
    lock.unlink()


def test_failing_command_is_recorded_and_its_exit_code_passed_on(repo: Path, gitexp) -> None:
    before = oracle.take(repo)
    proc = gitexp(*train("-n", "bad", "-S", "train.lr=0.3"), env={"EXIT": "7"})
    assert proc.returncode == 7
    oracle.assert_untouched(repo, before, OUTPUTS)
    record = json.loads(run_file(repo, "bad", ".gitexp/run.json"))
    assert record["status"] == "failed" and record["exit_code"] == 7
    assert "Status: failed" in git(repo, "log", "-1", "--format=%B", "refs/runs/bad")


def test_no_record_failed(repo: Path, gitexp) -> None:
    before = oracle.take(repo)
    proc = gitexp(*train("-n", "bad", "--no-record-failed", "-S", "seed=5"), env={"EXIT": "3"})
    assert proc.returncode == 3
    assert "not recorded" in proc.stderr
    oracle.assert_untouched(repo, before, OUTPUTS, max_new_runs=0)


def test_generated_names_are_unique_and_readable(repo: Path, gitexp) -> None:
    names = set()
    for _ in range(3):
        assert gitexp("run", "--", "true").returncode == 0
    names = {r["name"] for r in show_json(gitexp)}
    assert len(names) == 3
    assert all(len(n.split("-")) == 3 for n in names)


def test_existing_name_is_refused_before_running(repo: Path, gitexp) -> None:
    assert gitexp(*train("-n", "same")).returncode == 0
    (repo / "started").unlink()
    before = oracle.take(repo)
    proc = gitexp(*train("-n", "same"))
    assert proc.returncode == 2
    assert "run 'same' already exists" in proc.stderr
    assert not (repo / "started").exists()
    oracle.assert_untouched(repo, before, max_new_runs=0)


def test_tags_and_message(repo: Path, gitexp) -> None:
    proc = gitexp(*train("-n", "tagged", "--tag", "team=vision", "-m", "try a lower lr"))
    assert proc.returncode == 0, proc.stderr
    record = json.loads(run_file(repo, "tagged", ".gitexp/run.json"))
    assert record["tags"] == {"team": "vision"}
    assert "try a lower lr" in git(repo, "log", "-1", "--format=%B", "refs/runs/tagged")
    assert gitexp("run", "--tag", "novalue", "--", "true").returncode == 2


def test_without_command_runs_dvc_repro_when_dvc_yaml_exists(repo: Path, gitexp) -> None:
    proc = gitexp("run")
    assert proc.returncode == 2 and "no command given" in proc.stderr
    git(repo, "rm", "-q", ".gitignore")
    assert subprocess.run(["dvc", "init", "-q"], cwd=repo).returncode == 0
    (repo / "dvc.yaml").write_text(
        f"stages:\n  train:\n    cmd: {sys.executable} train.py\n    deps: [train.py]\n"
        "    params: [train.lr]\n    metrics:\n      - metrics.json:\n          cache: false\n"
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pipeline")
    proc = gitexp("run", "-n", "repro", "-S", "train.lr=0.5")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(run_file(repo, "repro", ".gitexp/run.json"))
    assert record["command"] == ["dvc", "repro"]
    assert record["metrics"]["metrics.json"]["acc"] == 0.5
    assert "train.lr: 0.5" in run_file(repo, "repro", "dvc.lock")


def test_command_not_found(repo: Path, gitexp) -> None:
    before = oracle.take(repo)
    proc = gitexp("run", "-S", "seed=2", "--", "no-such-command-xyz")
    assert proc.returncode == 2
    assert "command not found: 'no-such-command-xyz'" in proc.stderr
    oracle.assert_untouched(repo, before, max_new_runs=0)


def test_M4_missing_metrics_file_is_a_warning(repo: Path, gitexp) -> None:
    proc = gitexp("run", "-n", "quiet", "--", "true")
    assert proc.returncode == 0
    assert "wrote no metrics file" in proc.stderr
    assert show_json(gitexp, "quiet")[0]["metrics"] == {}
    assert show_json(gitexp, "quiet")[0]["status"] == "success"


def test_X1_secret_environment_values_never_enter_a_commit(repo: Path, gitexp) -> None:
    secret = "sk-test-XYZ0123456789"
    env = {"OPENAI_API_KEY": secret, "AWS_SECRET_ACCESS_KEY": secret, "MY_TOKEN": secret,
           "CUDA_VISIBLE_DEVICES": "0,1"}  # fmt: skip
    # the user even lists them: secret-looking names are still never recorded
    (repo / "gitexp.yaml").write_text(
        "env: [OPENAI_API_KEY, AWS_SECRET_ACCESS_KEY, MY_TOKEN, CUDA_VISIBLE_DEVICES]\n"
    )
    assert gitexp(*train("-n", "x1"), env=env).returncode == 0
    record = json.loads(run_file(repo, "x1", ".gitexp/run.json"))
    assert record["env"] == {"CUDA_VISIBLE_DEVICES": "0,1"}
    everything = git(repo, "log", "--all", "-p")
    assert secret not in everything


def test_run_works_in_a_subdirectory(repo: Path, gitexp) -> None:
    sub = repo / "sub"
    sub.mkdir()
    (sub / "local.py").write_text("open('out.txt', 'w').write('here')\n")
    proc = gitexp("run", "-n", "fromsub", "-S", "seed=9", "--", sys.executable, "local.py", cwd=sub)
    assert proc.returncode == 0, proc.stderr
    assert "seed: 9" in run_file(repo, "fromsub", "params.yaml")  # params are the root's
    assert run_file(repo, "fromsub", "sub/out.txt") == "here"  # the command ran where we were
    assert (repo / "params.yaml").read_text() == PARAMS


def test_git_exp_alias_is_installed(repo: Path) -> None:
    scripts = Path(sys.executable).parent
    assert (scripts / "git-exp").exists()
    proc = subprocess.run(["git", "exp", "--version"], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("gitexp, version ")


def test_git_writes_are_made_durable(repo: Path, gitexp, tmp_path: Path) -> None:
    """Every git command that writes objects or refs gets core.fsync (RELIABILITY rule 4),
    read from git's own trace of its command lines."""
    trace = tmp_path / "trace.json"
    proc = gitexp(*train("-n", "durable", "-S", "seed=2"), env={"GIT_TRACE2_EVENT": str(trace)})
    assert proc.returncode == 0, proc.stderr
    writers = {"hash-object", "write-tree", "commit-tree", "update-ref", "add", "update-index"}
    seen = set()
    for line in trace.read_text().splitlines():
        event = json.loads(line)
        if event["event"] != "start":
            continue
        argv = event["argv"][1:]
        while argv and argv[0] == "-c":
            argv = argv[2:]
        if argv and argv[0] in writers:
            seen.add(argv[0])
            assert "core.fsync=loose-object,reference" in event["argv"], event["argv"]
    assert seen >= {"hash-object", "write-tree", "commit-tree", "update-ref", "add"}, seen


def test_C7_runs_in_two_worktrees_share_refs_and_keep_their_own_base(repo: Path, gitexp, tmp_path):
    git(repo, "commit", "-q", "--allow-empty", "-m", "second")
    other = tmp_path / "wt2"
    git(repo, "worktree", "add", "-q", "--detach", str(other), "HEAD~1")
    before_main, before_other = oracle.take(repo), oracle.take(other)
    procs = [
        subprocess.Popen([sys.executable, "-m", "gitexp", *train("-n", name, "-S", "seed=5")],
                         cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for name, cwd in (("in-main", repo), ("in-wt2", other))
    ]  # fmt: skip
    for proc in procs:
        proc.communicate(timeout=120)
        assert proc.returncode == 0
    oracle.assert_untouched(repo, before_main, OUTPUTS, max_new_runs=2)
    assert git(other, "rev-parse", "refs/runs/in-wt2^") == before_other.head
    assert git(repo, "rev-parse", "refs/runs/in-main^") == before_main.head
    assert (other / "params.yaml").read_text() == PARAMS


def test_M3_large_and_tiny_numbers_survive_unchanged(repo: Path, gitexp) -> None:
    write = ("import json; open('metrics.json', 'w').write('{\"big\": %d, \"neg0\": -0.0, "
             "\"tiny\": 1e-320, \"exact\": 0.1}' % 2**70)")  # fmt: skip
    assert gitexp("run", "-n", "m3", "--", sys.executable, "-c", write).returncode == 0
    got = show_json(gitexp, "m3")[0]["metrics"]["metrics.json"]
    assert got == {"big": 2**70, "neg0": -0.0, "tiny": 1e-320, "exact": 0.1}
    assert str(2**70) in gitexp("show", "--csv").stdout


def test_M5_metrics_symlink_out_of_the_repo_is_not_read(repo: Path, gitexp, tmp_path) -> None:
    outside = tmp_path / "secret.json"
    outside.write_text('{"acc": 0.99}')
    link = f"import os; os.symlink({str(outside)!r}, 'metrics.json')"
    assert gitexp("run", "-n", "m5", "--", sys.executable, "-c", link).returncode == 0
    assert show_json(gitexp, "m5")[0]["metrics"] == {}
    mode = git(repo, "ls-tree", "refs/runs/m5", "metrics.json").split()[0]
    assert mode == "120000"  # committed as a symlink, its target not read


def test_R5_huge_output_is_streamed_and_the_log_capped(repo: Path) -> None:
    write = ("import sys; chunk = b'x' * 65535 + b'\\n'\n"
             "for _ in range(800): sys.stdout.buffer.write(chunk)")  # 50 MB  # fmt: skip
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "gitexp", "run", "-n", "loud", "--",
                           sys.executable, "-c", write], cwd=repo, capture_output=True)  # fmt: skip
    assert proc.returncode == 0
    assert len(proc.stdout) == 800 * 65536  # everything reached the terminal
    assert time.monotonic() - started < 60
    size = int(git(repo, "cat-file", "-s", "refs/runs/loud:.gitexp/run.log"))
    assert 10_000_000 <= size < 10_500_000
    assert b"bytes of output left out]" in subprocess.run(
        ["git", "cat-file", "blob", "refs/runs/loud:.gitexp/run.log"], cwd=repo,
        capture_output=True).stdout  # fmt: skip


def test_G6_submodule_is_recorded_as_its_commit(repo: Path, gitexp, tmp_path: Path) -> None:
    sub = make_repo(tmp_path / "sub")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(sub), "sub")
    git(repo, "commit", "-q", "-m", "submodule")
    before = oracle.take(repo)
    assert gitexp("run", "-n", "g6", "--", "true").returncode == 0
    oracle.assert_untouched(repo, before)
    entry = git(repo, "ls-tree", "refs/runs/g6", "sub").split()
    assert entry[:3] == ["160000", "commit", git(sub, "rev-parse", "HEAD")]


def test_C5_user_commits_during_a_run_stay_and_the_base_is_the_start(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    proc = subprocess.Popen([sys.executable, "-m", "gitexp", *train("-n", "c5")], cwd=repo,
                            env={**os.environ, "SLEEP": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 30
    while not (repo / "started").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    git(repo, "commit", "-q", "--allow-empty", "-m", "user work")
    git(repo, "pack-refs", "--all")
    user_commit = git(repo, "rev-parse", "HEAD")
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert git(repo, "rev-parse", "refs/runs/c5^") == base
    assert git(repo, "rev-parse", "main") == user_commit
