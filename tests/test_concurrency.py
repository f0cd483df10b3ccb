"""Parallel runs in one workspace (rows C1, C3, C4)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import oracle
from conftest import GITEXP, OUTPUTS, git

WRITE_SEED = (
    "import json, time, yaml; p = yaml.safe_load(open('params.yaml')); time.sleep(0.2); "
    "json.dump({'seed': p['seed']}, open('metrics.json', 'w'))"
)


def spawn(repo: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*GITEXP, *args], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ),
    )  # fmt: skip


def test_C1_eight_runs_in_one_workspace_all_land_with_their_own_params(repo: Path) -> None:
    before = oracle.take(repo)
    procs = [
        spawn(repo, "run", "-n", f"r{i}", "-S", f"seed={i}", "--", sys.executable, "-c", WRITE_SEED)
        for i in range(8)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, results
    assert any("waiting for run r" in err for _, err in results)
    added = oracle.assert_untouched(repo, before, OUTPUTS, max_new_runs=8)
    assert len(added) == 8
    for i in range(8):
        assert f"seed: {i}" in git(repo, "show", f"refs/runs/r{i}:params.yaml")
        assert json.loads(git(repo, "show", f"refs/runs/r{i}:metrics.json")) == {"seed": i}


def test_C3_same_name_race_one_ref_and_the_losers_never_start(repo: Path) -> None:
    marker = "import os, uuid; open('started-' + uuid.uuid4().hex, 'w').close()"
    procs = [spawn(repo, "run", "-n", "same", "--", sys.executable, "-c", marker) for _ in range(8)]
    for p in procs:
        p.communicate(timeout=120)
    codes = sorted(p.returncode for p in procs)
    assert codes == [0] + [2] * 7
    assert git(repo, "for-each-ref", "--format=%(refname)", "refs/runs/") == "refs/runs/same"
    assert len(list(repo.glob("started-*"))) == 1


def test_C4_readers_during_writes_never_fail_or_see_partial_runs(repo: Path) -> None:
    writers = [
        spawn(repo, "run", "-n", f"w{i}", "-S", f"seed={i}", "--", sys.executable, "-c", WRITE_SEED)
        for i in range(4)
    ]
    reads = 0
    while any(w.poll() is None for w in writers) or reads < 3:
        for args in (["show", "--json"], ["diff", "--json", "HEAD"]):
            proc = subprocess.run([*GITEXP, *args], cwd=repo, capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
            assert proc.stderr == ""  # no warning about a half-written run either
            if args[0] == "diff":  # the workspace may hold an override: only seed can differ
                diff = json.loads(proc.stdout)
                assert set(diff["params"].get("params.yaml", {})) <= {"seed"}, diff
                continue
            for run in json.loads(proc.stdout):  # every listed run is complete and its own
                seed = int(run["name"][1:])
                assert run["status"] == "success"
                assert run["params"]["params.yaml"]["seed"] == seed
                assert run["metrics"]["metrics.json"] == {"seed": seed}
                tree = git(repo, "ls-tree", "-r", "--name-only", run["rev"]).splitlines()
                assert ".gitexp/run.json" in tree and "metrics.json" in tree
        reads += 1
    for w in writers:
        w.communicate(timeout=120)
        assert w.returncode == 0
