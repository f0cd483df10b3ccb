"""`gitexp ui` over HTTP, started as a user starts it: the JSON endpoints against what `show`
and `diff` say, the Host check, the headers, paths that try to leave the run, the actions
behind --write, runs that land or are in progress while it serves, and nothing written."""

from __future__ import annotations

import http.client
import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import oracle
from conftest import GITEXP, git, isolate, make_repo, run_gitexp
from gitexp.ui.histories import Series, downsample, parse_history
from gitexp.ui.security import allowed_hosts, cache_file, check_write, host_ok, tree_path
from ui_fixtures import API_TRAIN, UiServer, add_runs, grid, wait_for

REAL = "real-0"
PNG = bytes.fromhex(  # a 1x1 image, as DVCLive's log_image leaves under plots/images
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8cfc0f01f0005000201a5e1b2710000000049454e44ae426082"
)
RUNS = 50


@pytest.fixture(scope="module")
def ui_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """50 runs with histories: one recorded by `gitexp run` with the Python API and a DVC
    artifact, 49 of the same shape from a sweep; a param value that is HTML."""
    with pytest.MonkeyPatch.context() as mp:
        isolate(tmp_path_factory.mktemp("home"), mp)
        repo = make_repo(tmp_path_factory.mktemp("ui") / "repo")
        (repo / "train.py").write_text(API_TRAIN)
        (repo / ".gitignore").write_text("/.gitexp/\n__pycache__/\n/model.bin\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "train with the API")
        assert run_gitexp(repo, "init").returncode == 0
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "dvc")
        (repo / "model.bin").write_bytes(bytes(range(256)) * 40)
        (repo / "dvclive" / "plots" / "images").mkdir(parents=True)
        (repo / "dvclive" / "plots" / "images" / "sample.png").write_bytes(PNG)
        # plots as DVC declares them and as DVCLive's sklearn helpers write them
        (repo / "dvc.yaml").write_text("plots:\n  - eval/roc.csv:\n      x: fpr\n      y: tpr\n")
        (repo / "eval").mkdir()
        (repo / "eval" / "roc.csv").write_text("fpr,tpr\n0,0\n0.1,0.7\n1,1\n")
        (repo / "dvclive" / "plots" / "sklearn").mkdir()
        pairs = [{"actual": a, "predicted": p} for a, p in ("aa", "ab", "bb", "bb")]
        (repo / "dvclive" / "plots" / "sklearn" / "confusion_matrix.json").write_text(
            json.dumps({"confusion_matrix": pairs})
        )
        proc = run_gitexp(repo, "run", "-n", REAL, "--out", "model.bin", "-S", "+model=<b>x</b>",
                          "--", sys.executable, "train.py")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        add_runs(repo, REAL, grid(RUNS - 1))
        yield repo


@pytest.fixture(scope="module")
def ui(ui_repo: Path) -> Iterator[UiServer]:
    server = UiServer(ui_repo)
    yield server
    code, err = server.stop()
    assert code == 130 and err.strip() == "", err  # Ctrl-C: quiet, with the shell's code


def show_json(repo: Path, *args: str) -> list[dict]:
    proc = run_gitexp(repo, "show", "--json", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_starts_fast_and_pages_runs_as_show_lists_them(ui: UiServer, ui_repo: Path) -> None:
    print(f"gitexp ui listened after {ui.startup:.2f} s")
    assert ui.startup < 3.0  # about 0.3 s here; the budget leaves room for a loaded CI
    assert "127.0.0.1" in ui.banner and "read-only" in ui.banner
    page = ui.json("/api/runs", {"limit": 20})
    assert page["total"] == RUNS and page["matched"] == RUNS and len(page["items"]) == 20
    listed = [r["name"] for r in show_json(ui_repo)]
    rest = ui.json("/api/runs", {"offset": 20, "limit": 100})["items"]
    assert [i["name"] for i in page["items"] + rest] == listed  # newest first, as show
    ids = [c["id"] for c in page["columns"]]
    assert "params.yaml:train.lr" in ids and "dvclive/metrics.json:acc" in ids
    assert "params.yaml:train.epochs" in ids  # 30 in the sweep, 3 in the real run
    # history summaries fill in (in the background) for every run
    page = wait_for(lambda: (p := ui.json("/api/runs", {"limit": 5}))
                    and "history:loss:min" in [c["id"] for c in p["columns"]] and p)  # fmt: skip
    at = [c["id"] for c in page["columns"]].index("history:loss:min")
    assert all(isinstance(i["values"][at], float) for i in page["items"])


def test_sort_filter_and_groups_match_show(ui: UiServer, ui_repo: Path) -> None:
    page = ui.json("/api/runs", {"sort": "acc", "desc": 1, "limit": 100})
    expected = [r["name"] for r in show_json(ui_repo, "--sort-by", "acc", "--desc")]
    assert [i["name"] for i in page["items"]] == expected
    at = [c["id"] for c in page["columns"]].index("dvclive/metrics.json:loss")
    nan_row = next(i for i in page["items"] if i["name"] == "grid/lr-0.01-s0")
    assert nan_row["values"][at] == "NaN"  # valid JSON, as show --json writes it
    lr = next(i for i in page["items"] if i["name"] == "grid/lr-1e-05-s0")
    assert lr["values"][[c["id"] for c in page["columns"]].index("params.yaml:train.lr")] == 1e-05

    page = ui.json("/api/runs", {"filter": "train.lr >= 0.03 and acc > 0.5"})
    expected = [r["name"] for r in show_json(ui_repo, "--filter", "train.lr >= 0.03 and acc > 0.5")]
    assert page["matched"] == len(expected) > 0
    assert [i["name"] for i in page["items"]] == expected
    assert set(ui.json("/api/names", {"filter": "train.lr >= 0.03"})["names"]) <= {
        r["name"] for r in show_json(ui_repo)
    }

    for bad, words in (("acc >", "invalid filter"), ("nope > 1", "unknown key 'nope'")):
        status, _, body = ui.request("GET", "/api/runs", {"filter": bad})
        assert status == 400 and words in json.loads(body)["error"]
    status, _, body = ui.request("GET", "/api/runs", {"sort": "nope"})
    assert status == 400 and "unknown key" in json.loads(body)["error"]

    groups = ui.json("/api/runs", {"group": "experiment", "limit": 1000})["items"]
    headings = {g["group"]: g for g in groups if g["type"] == "group"}
    assert headings["grid"]["count"] == RUNS - 1 and headings[""]["count"] == 1
    at = [c["id"] for c in ui.json("/api/runs", {"group": "experiment"})["columns"]].index(
        "dvclive/metrics.json:acc"
    )
    accs = [r["metrics"]["dvclive/metrics.json"]["acc"] for r in show_json(ui_repo)
            if r["name"].startswith("grid/")]  # fmt: skip
    assert headings["grid"]["summary"][at]["mean"] == pytest.approx(sum(accs) / len(accs))
    collapsed = ui.json("/api/runs", {"group": "experiment", "collapsed": "grid"})
    assert collapsed["count"] == 3  # two headings and the one run outside the sweep

    only = ui.json("/api/runs", {"columns": "train.* !train.epochs"})
    assert [c["label"] for c in only["columns"]] == ["train.lr"]


def test_compare_diff_and_run_page(ui: UiServer, ui_repo: Path) -> None:
    names = [f"grid/lr-{lr}-s1" for lr in (0.001, 0.01, 0.1)] + [REAL, "main"]
    status, data = ui.post("/api/compare", {"runs": [*names, "no-such-run"]})
    assert status == 200 and data["unknown"] == ["no-such-run"]
    assert [r["name"] for r in data["runs"]] == names
    lr = [p["label"] for p in data["params"]].index("train.lr")
    assert [r["params"][lr] for r in data["runs"]] == [0.001, 0.01, 0.1, 0.1, 0.1]
    assert next(p for p in data["params"] if p["label"] == "train.lr")["varying"]
    loss = data["histories"]["loss"]
    assert set(loss) == {n for n in names if n != "main"}  # main has no histories
    assert len(loss["grid/lr-0.01-s1"]["steps"]) == 30 and len(loss[REAL]["steps"]) == 3

    diff = ui.json("/api/diff", {"a": "grid/lr-0.001-s1", "b": "grid/lr-0.1-s1"})
    cli = json.loads(run_gitexp(ui_repo, "diff", "--json", "grid/lr-0.001-s1",
                                "grid/lr-0.1-s1").stdout)  # fmt: skip
    change = next(c for c in diff["changes"] if c["key"] == "train.lr")
    assert (change["old"], change["new"]) == (0.001, 0.1)
    assert cli["params"]["params.yaml"]["train.lr"]["new"] == change["new"]
    assert "-  lr: 0.001" in diff["code"]["patch"] and "+  lr: 0.1" in diff["code"]["patch"]
    assert ".gitexp/run.json" not in diff["code"]["patch"]

    run = ui.json("/api/run", {"name": REAL})
    assert run["status"] == "success" and run["record"]["command"][-1] == "train.py"
    assert "step 2 loss" in run["log"]["text"]
    assert run["params"]["params.yaml"]["model"] == "<b>x</b>"
    assert run["histories"]["acc"]["steps"] == [0, 1, 2]
    assert any(c["command"] == f"gitexp checkout {REAL}" for c in run["commands"])
    changed = {f["path"]: f for f in run["changes"]["files"]}
    assert changed["params.yaml"]["status"] == "M" and "model.bin.dvc" in changed
    (artifact,) = run["artifacts"]
    assert artifact["path"] == "model.bin" and artifact["size"] == 10240 and artifact["in_cache"]
    assert run["environment"]["python"] == ".".join(map(str, sys.version_info[:3]))
    plots = {p["title"]: p for p in run["plots"]}
    roc = plots["eval/roc.csv"]["series"][0]
    assert plots["eval/roc.csv"]["x"] == "fpr" and roc["name"] == "tpr"
    assert (roc["x"], roc["y"]) == ([0, 0.1, 1], [0, 0.7, 1])
    assert sorted(map(tuple, plots["Confusion matrix"]["pairs"])) == [
        ("a", "a"), ("a", "b"), ("b", "b"), ("b", "b")
    ]  # fmt: skip
    image = {"path": "dvclive/plots/images/sample.png", "source": "file"}
    assert image in run["images"]
    status, headers, body = ui.request("GET", "/api/file", {"name": REAL, "path": image["path"]})
    assert status == 200 and body == PNG and headers["content-type"] == "image/png"
    assert headers["content-disposition"].startswith("inline")
    assert ui.json("/api/run", {"name": "main"})["kind"] == "revision"
    assert ui.request("GET", "/api/run", {"name": "no-such-run"})[0] == 404
    assert ui.request("GET", "/api/run", {"name": "--upload-pack=x"})[0] == 404


def test_downloads_stay_inside_the_run_and_the_dvc_cache(ui: UiServer, ui_repo: Path) -> None:
    status, headers, body = ui.request("GET", "/api/artifact", {"name": REAL, "path": "model.bin"})
    assert status == 200 and body == (ui_repo / "model.bin").read_bytes()
    assert headers["content-disposition"].startswith("attachment")
    log = {"name": REAL, "path": ".gitexp/run.log"}
    status, headers, body = ui.request("GET", "/api/file", log)
    assert status == 200 and b"step 0" in body and "sandbox" in headers["content-security-policy"]
    for path in ("../../../../etc/passwd", "/etc/passwd", ".git/config", "a/../../x", "x\n"):
        for kind in ("file", "artifact"):
            status, _, body = ui.request("GET", f"/api/{kind}", {"name": REAL, "path": path})
            assert status in (400, 404) and b"root:" not in body, (kind, path)
    for raw in ("/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/__init__.py",
                "/static/..%2f..%2fserver.py", "//etc/passwd"):  # fmt: skip
        status, _, body = ui.request("GET", raw)
        assert status == 404 and b"root:" not in body and b"import" not in body, raw
    # a run whose pointer names an object outside the cache
    hostile = ui_repo / "hostile"
    git(ui_repo, "worktree", "add", "-q", "--detach", str(hostile), f"refs/runs/{REAL}")
    pointer = "outs:\n- md5: ../../../../../../etc/passwd\n  path: model.bin\n"
    (hostile / "model.bin.dvc").write_text(pointer)
    git(hostile, "commit", "-q", "-am", "hostile pointer")
    git(ui_repo, "update-ref", "refs/runs/hostile", git(hostile, "rev-parse", "HEAD"))
    git(ui_repo, "worktree", "remove", "--force", str(hostile))
    status, _, body = ui.request("GET", "/api/artifact", {"name": "hostile", "path": "model.bin"})
    assert status in (400, 404) and b"root:" not in body
    # a record whose base is a git option: opening the run page must not write a file (S5)
    record = json.loads(git(ui_repo, "show", f"refs/runs/{REAL}:.gitexp/run.json"))
    target = ui_repo.parent / "written-by-base"
    record["base"] = f"--output={target}"
    git(ui_repo, "worktree", "add", "-q", "--detach", str(hostile), f"refs/runs/{REAL}")
    (hostile / ".gitexp").mkdir(exist_ok=True)
    (hostile / ".gitexp" / "run.json").write_text(json.dumps(record))
    git(hostile, "add", "-f", ".gitexp/run.json")
    git(hostile, "commit", "-q", "-m", "base is an option")
    git(ui_repo, "update-ref", "refs/runs/hostile", git(hostile, "rev-parse", "HEAD"))
    git(ui_repo, "worktree", "remove", "--force", str(hostile))
    page = ui.json("/api/run", {"name": "hostile"})
    assert not target.exists()
    assert page["base"] is None and "'base' is not a commit id" in json.dumps(page["errors"])
    git(ui_repo, "update-ref", "-d", "refs/runs/hostile")


def test_host_check_and_security_headers(ui: UiServer) -> None:
    for host in ("evil.example", f"evil.example:{ui.port}", f"127.0.0.1:{ui.port + 1}",
                 f"127.0.0.1.evil.example:{ui.port}", ""):  # fmt: skip
        status, _, body = ui.request("GET", "/api/runs", headers={"Host": host})
        assert status == 421 and b"grid" not in body, host
    assert ui.request("GET", "/api/info", headers={"Host": f"localhost:{ui.port}"})[0] == 200
    for path in ("/", "/api/runs", "/static/app.js", "/api/nope"):
        status, headers, body = ui.request("GET", path)
        csp = headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp, path
        assert "unsafe-inline" not in csp and "http" not in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
    page = ui.request("GET", "/")[2].decode()
    assert "http://" not in page and "https://" not in page and "<script>" not in page


def test_actions_need_write_and_the_pages_token(ui: UiServer, ui_repo: Path) -> None:
    status, data = ui.post("/api/remove", {"runs": ["grid/lr-0.3-s6"]})
    assert status == 403 and "--write" in data["error"]
    assert git(ui_repo, "rev-parse", "-q", "--verify", "refs/runs/grid/lr-0.3-s6")
    writer = UiServer(ui_repo, "--write")
    try:
        assert "read-write" in writer.banner
        token = writer.request("GET", "/")[2].decode().split('name="gitexp-token" content="')[1]
        token = token.split('"')[0]
        assert len(token) > 30
        origin = f"http://127.0.0.1:{writer.port}"
        good = {"X-Gitexp-Token": token, "Origin": origin}
        for headers, body in (
            ({"Origin": origin}, {"runs": ["grid/lr-0.3-s6"]}),  # no token
            ({**good, "Origin": "http://evil.example"}, {"runs": ["grid/lr-0.3-s6"]}),
            ({**good, "Content-Type": "text/plain"}, json.dumps({"runs": ["x"]}).encode()),
        ):
            status, _ = writer.post("/api/remove", body, headers=headers)
            assert status == 403
        assert git(ui_repo, "rev-parse", "-q", "--verify", "refs/runs/grid/lr-0.3-s6")
        status, data = writer.post("/api/remove", {"runs": ["no-such-run"]}, headers=good)
        assert status == 400 and "no run named" in data["error"]
        status, data = writer.post("/api/remove", {"runs": ["grid/lr-0.3-s6"]}, headers=good)
        assert status == 200 and data == {"removed": ["grid/lr-0.3-s6"]}
        assert git(ui_repo, "rev-parse", "-q", "--verify", "refs/runs/grid/lr-0.3-s6",
                   check=False) == ""  # fmt: skip
        # tags and notes, as gitexp tag and gitexp note keep them (git notes)
        status, data = writer.post("/api/tag", {"run": REAL, "tags": {"team": "vision"}},
                                   headers=good)  # fmt: skip
        assert status == 200 and data["tags"]["team"] == "vision", data
        status, _ = writer.post("/api/note", {"run": REAL, "text": "best so far"}, headers=good)
        assert status == 200
        status, _ = writer.post("/api/tag", {"run": REAL, "tags": {"x": "y"}})  # no token
        assert status == 403
        for body in (
            {"run": REAL, "delete": 5},
            {"run": REAL, "delete": "team"},
            {"run": REAL, "tags": {"k": {"x": [1]}}},
            {"run": REAL, "tags": ["k"]},
        ):
            status, data = writer.post("/api/tag", body, headers=good)
            assert status == 400 and data["error"].startswith("send {"), (body, data)
        status, data = writer.post("/api/note", {"run": REAL, "text": ["x"]}, headers=good)
        assert status == 400
        shown = json.loads(run_gitexp(ui_repo, "show", "--json", REAL).stdout)[0]
        assert shown["tags"]["team"] == "vision" and shown["note"] == "best so far"
        row = wait_for(lambda: next((i for i in ui.json("/api/runs", {"limit": 100})["items"]
                                     if i["name"] == REAL and i["note"]), None))  # fmt: skip
        assert row["tags"]["team"] == "vision" and row["note"] == "best so far"
    finally:
        writer.stop()
    # the read-only server sees the removal too
    wait_for(lambda: ui.json("/api/runs")["total"] == RUNS - 1)
    add_runs(ui_repo, REAL, [s for s in grid(RUNS - 1) if s.name == "grid/lr-0.3-s6"])
    wait_for(lambda: ui.json("/api/runs")["total"] == RUNS)


def _row(ui: UiServer, name: str, **want: str) -> dict | None:
    """The run among the newest three, if it is there with the wanted fields."""
    items = ui.json("/api/runs", {"limit": 3})["items"]
    row = next((i for i in items if i["name"] == name), None)
    return row if row and all(row[k] == v for k, v in want.items()) else None


def _events(ui: UiServer) -> Iterator[dict]:
    conn = http.client.HTTPConnection(ui.host, ui.port, timeout=20)
    conn.request("GET", "/api/events", headers={"Host": f"{ui.host}:{ui.port}"})
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("content-type").startswith(
        "text/event-stream"
    )
    try:
        while True:
            line = response.readline().decode()
            if line.startswith("data: "):
                yield json.loads(line[6:])
    finally:
        conn.close()


def test_runs_that_land_and_runs_in_progress_appear_live(ui: UiServer, ui_repo: Path) -> None:
    events = _events(ui)
    first = next(events)
    before = oracle.take(ui_repo, frozenset({"dvclive", "model.bin"}))
    # `gitexp run` of a command that prints and flushes metrics as it goes
    proc = subprocess.Popen([*GITEXP, "run", "-n", "live-run", "--", sys.executable, "train.py",
                             "0.5"], cwd=ui_repo, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip

    def live_row() -> dict | None:
        page = ui.json("/api/runs", {"limit": 3})
        row = next((i for i in page["items"] if i["name"] == "live-run"), None)
        return row if row and row["status"] == "running" and page["live"] == 1 else None

    row = wait_for(live_row)
    assert row["kind"] == "live"
    update = next(u for u in events if u["live"])
    assert update["version"] > first["version"] and update["live"][0]["name"] == "live-run"
    log = wait_for(lambda: (part := ui.json("/api/log", {"name": "live-run"}))["text"] and part)
    assert log["text"].startswith("step 0") and log["running"]
    page = wait_for(lambda: (p := ui.json("/api/run", {"name": "live-run"}))["histories"] and p)
    assert page["status"] == "running" and page["histories"]["loss"]["steps"][0] == 0
    assert proc.wait(timeout=30) == 0, proc.stderr.read()  # type: ignore[union-attr]
    landed = wait_for(lambda: _row(ui, "live-run", kind="run"))
    assert landed["status"] == "success"
    assert ui.json("/api/runs")["live"] == 0
    assert ui.json("/api/log", {"name": "live-run"})["running"] is False
    assert next(events)["version"] > update["version"]
    oracle.assert_untouched(ui_repo, before, frozenset({"dvclive", "model.bin"}))

    # a Python-API run outside `gitexp run` shows its metrics as they are flushed
    proc = subprocess.Popen([sys.executable, "train.py", "0.5", "api-live"], cwd=ui_repo,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    wait_for(lambda: _row(ui, "api-live", status="running"))
    assert proc.wait(timeout=30) == 0, proc.stderr.read()  # type: ignore[union-attr]
    wait_for(lambda: _row(ui, "api-live", kind="run"))
    for name in ("live-run", "api-live"):
        git(ui_repo, "update-ref", "-d", f"refs/runs/{name}")
    assert not list((ui_repo / ".git" / "gitexp" / "live").glob("*.json"))


def test_reading_writes_nothing(ui: UiServer, ui_repo: Path) -> None:
    before = oracle.take(ui_repo, frozenset({"dvclive"}))
    ui.json("/api/runs", {"refs": 1, "group": "status", "sort": "history:loss:min"})
    ui.post("/api/compare", {"runs": ui.json("/api/names")["names"]})
    ui.json("/api/run", {"name": REAL})
    ui.json("/api/diff", {"a": REAL, "b": "main"})
    oracle.assert_untouched(ui_repo, before, frozenset({"dvclive"}), max_new_runs=0)


def test_taken_port_and_no_repository_are_one_line_errors(ui: UiServer, tmp_path: Path) -> None:
    proc = run_gitexp(tmp_path, "ui", "--port", str(ui.port))
    assert proc.returncode == 3 and proc.stderr.count("\n") == 1
    assert "not a git repository" in proc.stderr
    repo = make_repo(tmp_path / "other")
    proc = run_gitexp(repo, "ui", "--port", str(ui.port), timeout=20)
    assert proc.returncode == 3 and f"port {ui.port}" in proc.stderr and "--port" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_show_and_help_do_not_load_the_server(repo: Path) -> None:
    code = (
        "import sys\nfrom gitexp.cli import main\nmain(['show'])\n"
        "print(sorted(m for m in ('starlette', 'uvicorn', 'anyio') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("[]"), proc.stdout


# --- the parts, on inputs of real shapes ---------------------------------------------------------


def test_histories_of_real_shapes() -> None:
    dvclive = (
        b"timestamp\tstep\tloss\n1700000000\t0\t0.5\n1700000001\t1\tnan\n1700000002\t2\t1e-05\n"
    )
    series = parse_history(dvclive, "dvclive/plots/metrics/train/loss.tsv", "dvclive/plots/metrics")
    assert list(series) == ["train/loss"]
    assert series["train/loss"].steps == [0, 1, 2]
    assert series["train/loss"].values == [0.5, None, 1e-05]
    assert series["train/loss"].stats() == {"last": 1e-05, "min": 1e-05, "max": 0.5, "steps": 3}
    csv = b"epoch,loss,val_loss\n1,0.9,1.0\n2,0.5,inf\n"
    both = parse_history(csv, "history/fit.csv", "history")
    assert set(both) == {"loss", "val_loss"} and both["val_loss"].values == [1.0, None]
    assert both["loss"].steps == [1, 2]
    no_step = parse_history(b"acc\n0.1\n0.2\n", "history/acc.tsv", "history")
    assert no_step["acc"].steps == [0, 1]
    legacy = b'{"acc": [{"step": 0, "acc": 0.5}, {"step": 5, "acc": 0.75}]}'
    assert parse_history(legacy, "dvclive/plots/metrics/acc.json", "dvclive/plots/metrics")[
        "acc"
    ].steps == [0, 5]
    for junk in (b"", b"\x00\xff", b"step\n1\n", b"[1, 2", b"{}"):
        assert parse_history(junk, "history/x.tsv", "history") == {}


def test_thinning_keeps_the_shape_of_a_long_curve() -> None:
    steps = list(range(100_000))
    values = [math.sin(s / 5000) + (3.0 if s == 77_777 else 0.0) for s in steps]
    thin = downsample(Series([float(s) for s in steps], values), 1000)
    assert len(thin.steps) == 1000 and thin.steps[0] == 0 and thin.steps[-1] == 99_999
    assert max(thin.values) == max(values)  # the spike survives
    start = time.perf_counter()
    downsample(Series([float(s) for s in steps], values), 500)
    assert time.perf_counter() - start < 1.0


def test_dvc_cache_paths_stay_in_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    (cache / "files" / "md5" / "ab").mkdir(parents=True)
    good = "ab" + "c" * 30
    assert cache_file(cache, good) == (cache / "files" / "md5" / "ab" / ("c" * 30)).resolve()
    for bad in ("../../../etc/passwd", "ab/../../x", "AB" + "C" * 30, "ab" * 20, ""):
        with pytest.raises(Exception, match="invalid object id"):
            cache_file(cache, bad)
    (tmp_path / "outside").write_text("secret")
    (cache / "files" / "md5" / "ab" / ("d" * 30)).symlink_to(tmp_path / "outside")
    with pytest.raises(Exception, match="outside DVC's cache"):
        cache_file(cache, "ab" + "d" * 30)


def test_path_and_host_rules() -> None:
    assert tree_path("dvclive/plots/a b.png") == "dvclive/plots/a b.png"
    for bad in ("", "/etc/passwd", "../x", "a/../../x", ".git/config", "a/.GIT/x", "a\x00b",
                "a\\b", "./x/../.."):  # fmt: skip
        with pytest.raises(Exception, match="invalid path"):
            tree_path(bad)
    hosts = allowed_hosts("127.0.0.1", 5000)
    assert host_ok("127.0.0.1:5000", hosts, None) and host_ok("localhost:5000", hosts, None)
    assert not host_ok("attacker.example:5000", hosts, None)
    assert not host_ok("127.0.0.1:5001", hosts, None)
    wildcard = allowed_hosts("0.0.0.0", 8080)
    assert host_ok("192.168.1.20:8080", wildcard, 8080) and host_ok("[::1]:8080", wildcard, 8080)
    assert not host_ok("rebind.attacker.example:8080", wildcard, 8080)
    # an action's Origin follows the same rule: any address of a wildcard bind, no domain
    sent = {"x-gitexp-token": "t", "content-type": "application/json"}
    for origin in ("http://127.0.0.1:8080", "http://192.168.1.20:8080", "http://localhost:8080"):
        check_write({**sent, "origin": origin}, "t", wildcard, 8080)
    for origin in ("http://rebind.attacker.example:8080", "http://192.168.1.20:9999", "null"):
        with pytest.raises(PermissionError):
            check_write({**sent, "origin": origin}, "t", wildcard, 8080)
    with pytest.raises(PermissionError):
        check_write({**sent, "origin": "http://192.168.1.20:5000"}, "t", hosts, None)
