"""Hostile runs and untrusted input (rows S1 to S12 of the fault matrix).

Hostile runs are built with git plumbing in an attacker's clone and pushed to the shared
remote, as a teammate's or CI's remote would serve them; their data goes to the shared DVC
remote. A sentinel file outside the workspace must keep its bytes whatever gitexp does.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import oracle
from conftest import GITEXP, PARAMS, git, make_repo, run_gitexp, show_json

SLOW_COMMAND = "import time; open('started', 'w').write('1'); time.sleep(30)"


def plumb(repo: Path, *args: str, data: bytes | None = None, env: dict | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, input=data, capture_output=True,
                          env={**os.environ, **(env or {})}, check=True)  # fmt: skip
    return proc.stdout.decode().strip()


def dvc(repo: Path, *args: str) -> None:
    subprocess.run(["dvc", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def shared(tmp_path: Path) -> dict[str, Path]:
    """A bare git remote, a DVC remote directory, the victim's clone and an attacker's."""
    origin = tmp_path / "origin.git"
    store = tmp_path / "dvc-store"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    first = make_repo(tmp_path / "first")
    assert run_gitexp(first, "init").returncode == 0
    dvc(first, "remote", "add", "-d", "store", str(store))
    git(first, "add", "-A")
    git(first, "commit", "-q", "-m", "dvc")
    git(first, "push", "-q", str(origin), "main")
    victim, attacker = tmp_path / "victim", tmp_path / "attacker"
    for where in (victim, attacker):
        git(tmp_path, "clone", "-q", "-b", "main", f"file://{origin}", str(where))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x").write_bytes(b"sentinel")
    return {"origin": origin, "store": store, "victim": victim, "attacker": attacker,
            "outside": outside}  # fmt: skip


def put_in_dvc_remote(store: Path, content: bytes) -> str:
    digest = hashlib.md5(content).hexdigest()
    path = store / "files" / "md5" / digest[:2] / digest[2:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return digest


def hostile_run(attacker: Path, name: str, entries: list[tuple[str, bytes, str]]) -> str:
    """A run whose tree is a real run's tree plus `entries` (mode, content, path), pushed to
    origin as refs/runs/NAME. Returns its commit."""
    proc = run_gitexp(attacker, "run", "-n", f"{name}-seed", "--", "true")
    assert proc.returncode == 0, proc.stderr
    index = attacker / ".git" / f"evil-index-{name}"
    env = {"GIT_INDEX_FILE": str(index)}
    plumb(attacker, "read-tree", f"refs/runs/{name}-seed", env=env)
    for mode, content, path in entries:
        blob = plumb(attacker, "hash-object", "-w", "--stdin", data=content)
        plumb(attacker, "update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}", env=env)
    tree = plumb(attacker, "write-tree", env=env)
    commit = plumb(attacker, "commit-tree", tree, "-p", "HEAD", data=b"run evil\n")
    plumb(attacker, "push", "-q", "origin", f"{commit}:refs/runs/{name}")
    return commit


def pointer(path: str, digest: str) -> bytes:
    return f"outs:\n- md5: {digest}\n  size: 5\n  hash: md5\n  path: {path}\n".encode()


# --- S1, S2: nothing is written outside the workspace -----------------------------------------


def test_S1_symlink_escape_is_refused_by_every_command(shared: dict[str, Path]) -> None:
    digest = put_in_dvc_remote(shared["store"], b"pwned")
    hostile_run(shared["attacker"], "evil", [
        ("120000", str(shared["outside"]).encode(), "lnk"),
        ("100644", pointer("lnk/x", digest), "p.dvc"),
    ])  # fmt: skip
    victim = shared["victim"]
    pulled = run_gitexp(victim, "pull")
    assert pulled.returncode == 0, pulled.stderr
    before = oracle.take(victim)
    for args in (["checkout", "evil"], ["apply", "evil"], ["reproduce", "evil"],
                 ["branch", "evil", "evil-branch"], ["checkout", "evil", "--force"]):  # fmt: skip
        proc = run_gitexp(victim, *args)
        assert proc.returncode == 3, (args, proc.stderr)
        assert proc.stderr.strip() == (
            f"gitexp: error: run 'evil' is refused: lnk is a symlink that leaves the workspace "
            f"(-> {shared['outside']}); nothing was written"
        ), args
        assert (shared["outside"] / "x").read_bytes() == b"sentinel"
        oracle.assert_untouched(victim, before, max_new_runs=0)


@pytest.mark.parametrize(
    ("entries", "shown"),
    [
        (
            [("120000", b"sub", "lnk"), ("100644", b"outs:\n- md5: {d}\n  path: lnk/x\n", "p.dvc")],
            "lnk/x (in p.dvc) passes through the symlink lnk",
        ),
        (
            [("100644", b"outs:\n- md5: {d}\n  path: {o}/x\n", "p.dvc")],
            "{o}/x (in p.dvc) is outside the workspace",
        ),
        (
            [("100644", b"outs:\n- md5: {d}\n  path: ../outside/x\n", "p.dvc")],
            "../outside/x (in p.dvc) is outside the workspace",
        ),
        (
            [("100644", b"outs:\n- md5: ../../../../x\n  path: y\n", "p.dvc")],
            "y (in p.dvc) has a hash that is not an md5",
        ),
        ([("120000", b"../../outside", "up")], "up is a symlink that leaves the workspace"),
        ([("120000", b"../../x", "sub/l")], "sub/l is a symlink that leaves the workspace"),
        ([("100644", b"{}", ".gitexp/extra.json")], ".gitexp/extra.json is inside .gitexp/"),
        ([("120000", b".git/hooks", "hooks")], "hooks is a symlink into git's or gitexp's"),
    ],
)
def test_S2_absolute_dotdot_and_reserved_paths_are_refused(
    shared: dict[str, Path], entries: list, shown: str
) -> None:
    digest = put_in_dvc_remote(shared["store"], b"pwned")
    outside = str(shared["outside"])
    filled = [(m, c.replace(b"{d}", digest.encode()).replace(b"{o}", outside.encode()), p)
              for m, c, p in entries]  # fmt: skip
    hostile_run(shared["attacker"], "evil", filled)
    victim = shared["victim"]
    assert run_gitexp(victim, "pull").returncode == 0
    before = oracle.take(victim)
    for command in ("checkout", "apply"):
        proc = run_gitexp(victim, command, "evil")
        assert proc.returncode == 3, proc.stderr
        assert shown.replace("{o}", outside) in proc.stderr
        assert "Traceback" not in proc.stderr
    assert (shared["outside"] / "x").read_bytes() == b"sentinel"
    oracle.assert_untouched(victim, before, max_new_runs=0)


def test_S2_git_hook_in_a_local_tree_is_refused(tmp_path: Path) -> None:
    """A tree with .git/hooks/post-checkout made locally (fetch would reject it, row W5)."""
    repo = make_repo(tmp_path / "repo")
    assert run_gitexp(repo, "run", "-n", "seed", "--", "true").returncode == 0
    hook = plumb(repo, "hash-object", "-w", "--stdin", data=b"#!/bin/sh\ntouch pwned\n")
    hooks = plumb(repo, "mktree", data=f"100755 blob {hook}\tpost-checkout\n".encode())
    dot_git = plumb(repo, "mktree", data=f"040000 tree {hooks}\thooks\n".encode())
    listing = plumb(repo, "ls-tree", "refs/runs/seed").encode() + b"\n"
    tree = plumb(repo, "mktree", data=listing + f"040000 tree {dot_git}\t.git\n".encode())
    commit = plumb(repo, "commit-tree", tree, "-p", "HEAD", data=b"evil\n")
    plumb(repo, "update-ref", "refs/runs/evil", commit)
    for command in ("checkout", "apply"):
        proc = run_gitexp(repo, command, "evil")
        assert proc.returncode == 3
        assert "run 'evil' is refused: .git/hooks/post-checkout is inside .git" in proc.stderr
    assert not (repo / ".git" / "hooks" / "post-checkout").exists()
    assert not (repo / "pwned").exists()


# --- S3, S4: bounded parsing ------------------------------------------------------------------


def alias_bomb(levels: int = 10) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


# Runs gitexp under a 300 MB address-space limit and reports its own peak RSS (a wrapper
# process, so no earlier child of the test process counts).
WRAPPER = """
import resource, subprocess, sys
limit = lambda: resource.setrlimit(resource.RLIMIT_AS, (300 << 20, 300 << 20))
proc = subprocess.run(sys.argv[1:], preexec_fn=limit)
print("PEAK", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024, file=sys.stderr)
sys.exit(proc.returncode)
"""


def bounded(repo: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float, int]:
    """(result, seconds, peak RSS in MB) of gitexp under a memory limit."""
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", WRAPPER, *GITEXP, *args], cwd=repo,
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    elapsed = time.monotonic() - started
    peak = int(proc.stderr.rsplit("PEAK ", 1)[1])
    proc.stderr = proc.stderr.rsplit("PEAK ", 1)[0]
    return proc, elapsed, peak


@pytest.mark.parametrize("path", ["params.yaml", "gitexp.yaml", "dvc.yaml", "dvc.lock", "data.dvc"])
def test_S3_alias_bomb_in_any_yaml_file_fails_fast_and_small(repo: Path, path: str) -> None:
    (repo / path).write_text(alias_bomb())
    proc, elapsed, peak = bounded(repo, "run", "-n", "bomb", "--", "true")
    if path in ("dvc.lock", "data.dvc"):  # data pointers: the run records, the bomb is unread
        assert proc.returncode in (0, 2), proc.stderr
    else:
        assert proc.returncode == 2, proc.stderr
        assert f"{path}: aliases expand its" in proc.stderr
    assert "Traceback" not in proc.stderr and "MemoryError" not in proc.stderr
    assert elapsed < 3 and peak < 150, (elapsed, peak)


def test_S3_alias_bomb_on_a_branch_for_show_diff_report(repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "bomb")
    (repo / "params.yaml").write_text(alias_bomb())
    git(repo, "commit", "-q", "-am", "bomb")
    for args in (["show", "bomb"], ["diff", "main", "bomb"], ["report", "--base", "main"]):
        proc, elapsed, peak = bounded(repo, *args)
        assert "params.yaml: aliases expand its" in proc.stdout + proc.stderr, args
        assert "Traceback" not in proc.stderr
        assert elapsed < 3 and peak < 150, (args, elapsed, peak)


def test_S4_recursive_alias_and_deep_nesting_are_one_line_errors(repo: Path, gitexp) -> None:
    proc = gitexp("run", "-S", "seed=&a [*a]", "--", "true")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "gitexp: error: -S seed=&a [*a]: an alias refers to a value that contains it"
    )
    deep = "(" * 10_000 + "seed > 0" + ")" * 10_000
    for args in (["show", "--filter", deep], ["report", "--base", "HEAD", "--check", deep]):
        proc = gitexp(*args)
        assert proc.returncode == 2, proc.stderr
        assert "it nests more than 50 levels" in proc.stderr
        assert len(proc.stderr.splitlines()) == 1 and "Recursion" not in proc.stderr
    nested = "open('metrics.json', 'w').write('{\"deep\": ' + '[' * 10000 + ']' * 10000 + '}')"
    proc = gitexp("run", "-n", "deep", "--", sys.executable, "-c", nested)
    assert proc.returncode == 0, proc.stderr
    assert "metrics.json: nested more than 100 levels deep (the limit)" in proc.stderr
    listed = show_json(gitexp)
    assert listed[0]["errors"]["metrics.json"].startswith("metrics.json: nested more than")


# --- S5, S6: what a remote sends is validated before any ref is created -----------------------


def push_raw(attacker: Path, ref: str, oid: str) -> None:
    plumb(attacker, "push", "-q", "origin", f"+{oid}:{ref}")


def run_with_record(attacker: Path, name: str, record: bytes) -> str:
    """A commit whose tree is a real run's with `.gitexp/run.json` replaced."""
    proc = run_gitexp(attacker, "run", "-n", f"{name}-seed", "--", "true")
    assert proc.returncode == 0
    index = attacker / ".git" / f"idx-{name}"
    env = {"GIT_INDEX_FILE": str(index)}
    plumb(attacker, "read-tree", f"refs/runs/{name}-seed", env=env)
    blob = plumb(attacker, "hash-object", "-w", "--stdin", data=record)
    plumb(attacker, "update-index", "--cacheinfo", f"100644,{blob},.gitexp/run.json", env=env)
    tree = plumb(attacker, "write-tree", env=env)
    return plumb(attacker, "commit-tree", tree, "-p", "HEAD", data=b"bad record\n")


def test_S5_S6_pull_skips_malformed_runs_and_hostile_refs_by_name(shared) -> None:
    attacker, victim = shared["attacker"], shared["victim"]
    assert run_gitexp(attacker, "run", "-n", "good", "--", "true").returncode == 0
    good = json.loads(plumb(attacker, "show", "refs/runs/good:.gitexp/run.json"))
    bad_types = run_with_record(attacker, "types", json.dumps({**good, "started": 5}).encode())
    bad_params = run_with_record(attacker, "params", json.dumps({**good, "params": "x"}).encode())
    option = json.dumps({**good, "base": "--output=pwned-by-base"}).encode()
    base_option = run_with_record(attacker, "baseopt", option)  # an option where a commit goes
    not_json = run_with_record(attacker, "notjson", b"{not json")
    huge = run_with_record(attacker, "huge", b'{"pad": "' + b"x" * (11 << 20) + b'"}')
    blob = plumb(attacker, "hash-object", "-w", "--stdin", data=b"just a blob")
    tag = plumb(attacker, "mktag", data=(
        f"object {plumb(attacker, 'rev-parse', 'refs/runs/good')}\ntype commit\ntag t\n"
        "tagger A <a@b> 0 +0000\n\nt\n").encode())  # fmt: skip
    for ref, oid in (("refs/runs/types", bad_types), ("refs/runs/params", bad_params),
                     ("refs/runs/notjson", not_json), ("refs/runs/huge", huge),
                     ("refs/runs/baseopt", base_option),
                     ("refs/runs/-upload-pack=touch pwned", plumb(attacker, "rev-parse", "HEAD")),
                     ("refs/runs/blob", blob), ("refs/runs/tagged", tag)):  # fmt: skip
        push_raw(attacker, ref.replace(" ", "_"), oid)
    plumb(attacker, "push", "-q", "origin", "refs/runs/good")
    before = {r for r in git(victim, "for-each-ref", "--format=%(refname)").splitlines()}
    proc = run_gitexp(victim, "pull", "--no-data")
    assert proc.returncode == 0, proc.stderr
    after = {r for r in git(victim, "for-each-ref", "--format=%(refname)").splitlines()}
    assert after - before == {"refs/runs/good"}
    warnings = proc.stderr
    for name, why in (("types", "'started' is int, not a string"),
                      ("params", "'params' is str, not an object"),
                      ("notjson", "its record is not valid JSON"),
                      ("baseopt", "'base' is not a commit id"),
                      ("huge", "over the 10,485,760 limit"),
                      ("-upload-pack=touch_pwned", "it must not begin with '-'"),
                      ("blob", "it points at a blob, not a commit"),
                      ("tagged", "it points at a tag, not a commit")):  # fmt: skip
        assert f"skipped origin's run '{name}'" in warnings and why in warnings, (name, warnings)
    assert not (victim / "pwned").exists()
    assert git(victim, "for-each-ref", "refs/gitexp-fetch/") == ""  # scratch refs gone
    assert "pulled 1 new run(s)" in proc.stdout


def test_S5_bad_record_already_present_is_listed_with_a_warning(repo: Path, gitexp) -> None:
    assert gitexp("run", "-n", "fine", "--", sys.executable, "train.py").returncode == 0
    good = json.loads(git(repo, "show", "refs/runs/fine:.gitexp/run.json"))
    commit = run_with_record(repo, "broken", json.dumps({**good, "started": 5}).encode())
    plumb(repo, "update-ref", "refs/runs/broken", commit)
    proc = gitexp("show", "--json")
    assert proc.returncode == 0, proc.stderr
    listed = {r["name"]: r for r in json.loads(proc.stdout)}
    assert listed["fine"]["metrics"]["metrics.json"]["acc"] == 0.9
    assert listed["broken"]["status"] == "unknown"
    assert proc.stderr.count("broken: its record is malformed: 'started' is int") == 1
    for args in (["show"], ["diff", "fine", "broken"], ["report", "--base", "HEAD"],
                 ["log", "fine"]):  # fmt: skip
        proc = gitexp(*args)
        assert proc.returncode == 0, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert gitexp("remove", "broken").returncode == 0


# --- S7: recovery keeps the user's later edits ------------------------------------------------


def start_killable(repo: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([*GITEXP, *args], cwd=repo, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True,
                            env={**os.environ, **(env or {})})  # fmt: skip


def wait_for(path: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_S7_recovery_never_overwrites_a_later_edit(repo: Path, gitexp) -> None:
    proc = start_killable(repo, "run", "-S", "seed=42", "--", sys.executable, "-c", SLOW_COMMAND)
    wait_for(repo / "started")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert "seed: 42" in (repo / "params.yaml").read_text()  # the override is still on disk
    mine = PARAMS.replace("seed: 1", "seed: 7  # my edit after the crash")
    (repo / "params.yaml").write_text(mine)
    shown = gitexp("show")
    assert shown.returncode == 0
    assert (repo / "params.yaml").read_text() == mine
    saved = shown.stderr.split("the earlier version is at ")[1].split(")")[0]
    assert Path(saved).read_text() == PARAMS
    assert Path(saved).is_relative_to(repo / ".git")
    assert "kept your later edits to params.yaml" in shown.stderr
    assert gitexp("show").stderr == ""  # handled once


# --- S8: a kill during apply or checkout ends all old or all new ------------------------------


@pytest.fixture
def data_runs(tmp_path: Path) -> Path:
    """A DVC repository with two runs that differ in code, params and a tracked model."""
    repo = make_repo(tmp_path / "repo")
    assert run_gitexp(repo, "init").returncode == 0
    (repo / "model.bin").write_text("weights-0")
    dvc(repo, "add", "model.bin")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "model")
    for name in ("a", "b"):
        (repo / "train.py").write_text((repo / "train.py").read_text() + f"# {name}\n")
        write = f"open('model.bin', 'w').write('weights-{name}' * 1000)"
        proc = run_gitexp(repo, "run", "-n", name, "-S", f"seed={ord(name)}", "--",
                          sys.executable, "-c", write)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        git(repo, "checkout", "-q", "--", ".")
    dvc(repo, "checkout", "-f")
    return repo


def state(repo: Path) -> tuple[str, str, str, str | None]:
    """(HEAD, params, train.py, model.bin) as on disk."""

    def read(name: str) -> str | None:
        try:
            return (repo / name).read_text()
        except FileNotFoundError:
            return None

    head = git(repo, "rev-parse", "HEAD")
    return head, read("params.yaml") or "", read("train.py") or "", read("model.bin")


def back_to_main(repo: Path) -> None:
    git(repo, "checkout", "-q", "-f", "main")
    git(repo, "clean", "-qfd")
    dvc(repo, "checkout", "-f")


def test_S8_kill_during_apply_or_checkout_is_all_old_or_all_new(data_runs: Path) -> None:
    """A kill -9 at each journaled step, then at 50 seeded random moments: after the next
    start, files and data are all as before or all as the run, and the message says which."""
    repo = data_runs
    old = state(repo)
    timings, new = {}, {}
    for command in ("apply", "checkout"):  # the complete outcome, and how long it takes
        started = time.monotonic()
        assert run_gitexp(repo, command, "a").returncode == 0
        timings[command] = time.monotonic() - started
        new[command] = state(repo)
        back_to_main(repo)
    assert new["apply"][3] == new["checkout"][3] == "weights-a" * 1000 != old[3]

    def recover_and_check(command: str, proc: subprocess.Popen) -> tuple[bool, str]:
        proc.communicate(timeout=60)
        shown = run_gitexp(repo, "show")
        assert shown.returncode == 0, shown.stderr
        now = state(repo)
        assert now in (old, new[command]), (command, shown.stderr)
        if "cut off" in shown.stderr:  # the message says which state it ended in
            assert ("finished it" in shown.stderr) == (now == new[command]), shown.stderr
        back_to_main(repo)
        assert state(repo) == old
        return now == old, shown.stderr

    # each journaled step: an apply cut off is rolled back, a checkout cut off after git
    # moved HEAD is finished
    for phase, command, ends_old, said in (
        ("apply-writing", "apply", True, "before it changed any file"),
        ("apply-written", "apply", True, "rolled back (files and data)"),
        ("checkout-started", "checkout", True, "before anything changed"),
        ("checkout-moved", "checkout", False, "finished it (files and data)"),
    ):
        proc = start_killable(repo, command, "a", env={"GITEXP_FAULT": f"{phase}:sigkill"})
        was_old, stderr = recover_and_check(command, proc)
        assert was_old == ends_old and said in stderr, (phase, stderr)
    # and anywhere: kills at random moments (git may even finish what gitexp started)
    chooser = random.Random(8)
    for trial in range(50):
        command = ("apply", "checkout")[trial % 2]
        proc = start_killable(repo, command, "a")
        time.sleep(chooser.uniform(0, timings[command]))
        os.killpg(proc.pid, signal.SIGKILL)
        recover_and_check(command, proc)


# --- S9: --force keeps what is staged ---------------------------------------------------------


def test_S9_force_saves_index_and_worktree_and_apply_brings_both_back(repo: Path, gitexp) -> None:
    proc = gitexp("run", "-n", "other", "-S", "seed=5", "--", sys.executable, "train.py")
    assert proc.returncode == 0, proc.stderr
    (repo / "train.py").write_text((repo / "train.py").read_text() + "# staged version\n")
    git(repo, "add", "train.py")
    (repo / "train.py").write_text((repo / "train.py").read_text() + "# worktree version\n")
    (repo / "params.yaml").write_text(PARAMS.replace("epochs: 3", "epochs: 4"))
    staged, unstaged = git(repo, "diff", "--cached"), git(repo, "diff")
    proc = gitexp("checkout", "other", "--force")
    assert proc.returncode == 0, proc.stderr
    saved = proc.stderr.split("(worktree and index) as run '")[1].split("'")[0]
    git(repo, "checkout", "-q", "main")
    proc = gitexp("apply", saved)
    assert proc.returncode == 0, proc.stderr
    assert git(repo, "diff", "--cached") == staged
    assert git(repo, "diff") == unstaged


# --- S10: secrets printed by the command stay out ---------------------------------------------


def test_S10_secret_values_printed_by_the_command_are_masked(repo: Path, gitexp) -> None:
    token, aws = "ghp_0123456789abcdefSECRET", "wJalrXUtnFEMI/K7MDENG/bPxRfiCY"
    env = {"GITHUB_TOKEN": token, "AWS_SECRET_ACCESS_KEY": aws, "SHORT_TOKEN": "abc"}
    code = "import os; print(os.environ['GITHUB_TOKEN'], os.environ['AWS_SECRET_ACCESS_KEY'])"
    proc = gitexp("run", "-n", "leaky", "--", sys.executable, "-c", code, token, env=env)
    assert proc.returncode == 0, proc.stderr
    assert token in proc.stdout  # the user's own terminal sees it as printed
    log = git(repo, "show", "refs/runs/leaky:.gitexp/run.log")
    assert log == "*** ***"
    record = json.loads(git(repo, "show", "refs/runs/leaky:.gitexp/run.json"))
    assert record["command"][-1] == "***"
    everything = git(repo, "log", "-p", "--all")
    assert token not in everything and aws not in everything
    grep = subprocess.run(["git", "grep", "-e", token, "-e", aws, "refs/runs/leaky"], cwd=repo,
                          capture_output=True)  # fmt: skip
    assert grep.returncode == 1  # no match


def test_X3_secret_looking_params_warn_and_are_masked_in_show(repo: Path, gitexp) -> None:
    proc = gitexp("run", "-n", "keyed", "-S", "+api_key=sk-live-123", "-S", "+max_tokens=512",
                  "--", sys.executable, "train.py")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "param 'api_key' in params.yaml looks like a secret" in proc.stderr
    assert "max_tokens" not in proc.stderr
    listed = show_json(gitexp, "keyed")[0]["params"]["params.yaml"]
    assert listed["api_key"] == "***" and listed["max_tokens"] == 512
    assert "sk-live-123" not in gitexp("show").stdout


# --- S11: clean failure -----------------------------------------------------------------------


def test_S11_leftovers_of_a_killed_gitexp_are_removed_at_the_next_start(repo: Path) -> None:
    tmp = repo / ".git" / "gitexp" / "tmp"
    tmp.mkdir(parents=True)
    dead = 2**22 + 17  # above the default pid_max: never a live process
    for name in (f"index.{dead}", f"blob.{dead}.0", f"write.{dead}.3", f"journal.{dead}.1"):
        (tmp / name).write_bytes(b"x" * 1000)
    (tmp / f"index.{os.getpid()}").write_bytes(b"live")  # a running process's file stays
    proc = start_killable(repo, "run", "--", sys.executable, "-c", SLOW_COMMAND)
    wait_for(repo / "started")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert run_gitexp(repo, "show").returncode == 0
    assert sorted(p.name for p in tmp.iterdir()) == [f"index.{os.getpid()}"]
    assert not [p for p in repo.rglob("*gitexp-*") if ".git" not in p.parts]


def test_S11_reproduce_worktree_of_a_killed_gitexp_is_removed(repo: Path) -> None:
    code = (
        "import os, time; open(os.environ['MARK'], 'w').close(); "
        "time.sleep(int(os.environ.get('WAIT', '0')))"
    )
    mark = repo.parent / "mark"
    proc = run_gitexp(repo, "run", "-n", "slowish", "--", sys.executable, "-c", code,
                      env={"MARK": str(mark)})  # fmt: skip
    assert proc.returncode == 0
    mark.unlink()
    repro = subprocess.Popen([*GITEXP, "reproduce", "slowish"], cwd=repo, start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={**os.environ, "MARK": str(mark), "WAIT": "30"})  # fmt: skip
    wait_for(mark)
    worktrees = git(repo, "worktree", "list", "--porcelain").count("worktree ")
    assert worktrees == 2
    os.killpg(repro.pid, signal.SIGKILL)
    repro.communicate(timeout=60)
    shown = run_gitexp(repo, "show")
    assert "removed the worktree" in shown.stderr
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1


def test_S11_read_only_git_directory_is_one_line_exit_4(repo: Path) -> None:
    script = (f"mount --bind {repo}/.git {repo}/.git && mount -o remount,bind,ro {repo}/.git && "
              f"cd {repo} && exec {sys.executable} -m gitexp run -S seed=3 -- "
              f"{sys.executable} train.py")  # fmt: skip
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True)
    if "Operation not permitted" in proc.stderr or "unshare failed" in proc.stderr:
        if os.environ.get("CI"):
            pytest.fail(f"a read-only bind mount needs root and CI runs as root: {proc.stderr}")
        pytest.skip("mount namespaces need root")
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr.strip().startswith("gitexp: error: Read-only file system")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (repo / "started").exists()  # refused before the command ran
    assert (repo / "params.yaml").read_text() == PARAMS
    assert not [p for p in repo.rglob("*gitexp-*") if ".git" not in p.parts]


def test_S11_full_disk_while_journaling_leaves_nothing_in_the_workspace(repo: Path) -> None:
    before = oracle.take(repo)
    for phase in ("params-journaled", "params-written"):
        proc = run_gitexp(repo, "run", "-S", "seed=3", "--", sys.executable, "train.py",
                          env={"GITEXP_FAULT": f"{phase}:enospc"})  # fmt: skip
        assert proc.returncode == 4, proc.stderr
        assert proc.stderr.strip() == "gitexp: error: No space left on device"
        oracle.assert_untouched(repo, before, max_new_runs=0)


# --- S12: names and targets -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-n", "refs/heads/x"], "it must not begin with 'refs/'"),
        (["-n", "heads/main"], "it must not begin with 'heads/'"),
        (["-S", ".git/HEAD:ref=refs/heads/evil"], "'.git/HEAD' belongs to git, DVC or gitexp"),
        (["-S", "+.gitexp/run.json:x=1"], "'.gitexp/run.json' belongs to git, DVC or gitexp"),
        (["-S", "sub/../.git/config:x=1"], "is not a params file in the repo"),
    ],
)
def test_S12_names_and_override_targets_are_refused(repo: Path, args: list, message: str) -> None:
    head = (repo / ".git" / "HEAD").read_bytes()
    proc = run_gitexp(repo, "run", *args, "--", sys.executable, "train.py")
    assert proc.returncode == 2
    assert message in proc.stderr
    assert (repo / ".git" / "HEAD").read_bytes() == head
    assert not (repo / "started").exists()


def test_S12_override_through_a_symlinked_folder_into_git_is_refused(repo: Path) -> None:
    (repo / "cfg").symlink_to(".git")
    proc = run_gitexp(repo, "run", "-S", "cfg/HEAD:ref=x", "--", "true")
    assert proc.returncode == 2
    assert "cannot override cfg/HEAD: it is not a file of this workspace" in proc.stderr
