"""`gitexp ui` in headless Chromium, as a user works with it: 50 runs with histories; sort,
filter (and a bad filter), select 5 runs, compare them, read the params table, count the
drawn series and hide one, open a run page and its log, and see a run that lands while the
page is open appear without a reload. Nothing is requested from any other origin, no
Content-Security-Policy violation occurs, and HTML in a value stays text."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from conftest import git, make_repo, run_gitexp
from ui_fixtures import API_TRAIN, UiServer, add_runs, grid

HOSTILE = "<img src=x onerror=window.__pwned=1>"


def _repo(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "repo")
    (repo / "train.py").write_text(API_TRAIN)
    git(repo, "commit", "-q", "-am", "train with the API")
    proc = run_gitexp(repo, "run", "-n", "real-0", "--tag", f"why={HOSTILE}", "--",
                      sys.executable, "train.py")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    add_runs(repo, "real-0", grid(49))
    return repo


def _show(repo: Path, *args: str) -> list[dict]:
    proc = run_gitexp(repo, "show", "--json", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_browse_sort_filter_compare_and_follow(browser, tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    ui = UiServer(repo)
    requests: list[str] = []
    problems: list[str] = []
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        # the bad filter's answer (400) is the one error the browser is expected to log
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(ui.url)
        page.wait_for_selector(".row.run")
        assert page.locator(".actions .count").inner_text() == "50 runs"

        # sort by a metric, descending: two clicks on its heading
        heading = page.locator(".cell.head.metrics", has_text="acc").first
        heading.click()
        page.wait_for_selector(".cell.head.sorted")
        heading.click()
        page.wait_for_selector(".cell.head.sorted >> text=▼")
        best = _show(repo, "--sort-by", "acc", "--desc")
        page.wait_for_function(
            "name => document.querySelector('.row.run .cell.name a').textContent === name",
            arg=best[0]["name"],
        )

        # filter, as show --filter does, then a filter that does not parse
        filter_box = page.get_by_label("filter")
        filter_box.fill("train.lr >= 0.1")
        filter_box.press("Enter")
        expected = [r["name"] for r in _show(repo, "--filter", "train.lr >= 0.1", "--sort-by",
                                               "acc", "--desc")]  # fmt: skip
        page.wait_for_function(
            "n => document.querySelector('.actions .count').textContent.startsWith(n + ' of 50')",
            arg=len(expected),
        )
        assert page.locator(".row.run .cell.name a").all_inner_texts() == expected
        filter_box.fill("acc >")
        filter_box.press("Enter")
        error = page.locator(".runs-view .error")
        error.wait_for()
        assert "invalid filter 'acc >'" in error.inner_text()
        filter_box.fill("")
        filter_box.press("Enter")
        page.wait_for_function(
            "() => document.querySelector('.actions .count').textContent === '50 runs'"
        )

        # select five runs of different learning rates and compare them
        boxes = page.locator(".row.run .cell.select input")
        picks = [0, 7, 14, 21, 28]
        chosen = [page.locator(".row.run .cell.name a").all_inner_texts()[i] for i in picks]
        for i in picks:
            boxes.nth(i).check()
        assert page.locator(".actions .selected").inner_text() == "5 selected"
        page.get_by_role("link", name="Compare 5").click()
        page.wait_for_selector("table.compare-table.params")
        page.get_by_label("only keys that differ").uncheck()
        lr_row = page.locator("table.params tr", has=page.locator("th.key", has_text="train.lr"))
        shown = lr_row.locator("td").all_inner_texts()
        records = {r["name"]: r for r in _show(repo, *chosen)}
        assert [float(v) for v in shown] == [
            records[n]["params"]["params.yaml"]["train.lr"] for n in chosen
        ]
        assert page.locator("table.params thead th").all_inner_texts()[1:] == chosen

        page.get_by_role("tab", name="Charts").click()
        chart = page.locator(".chart-cell[data-metric='loss']")
        chart.wait_for()
        assert chart.get_attribute("data-series") == "5"
        assert chart.locator("canvas").count() == 1
        page.locator(".legend-item", has_text=chosen[0]).click()
        page.wait_for_selector(".chart-cell[data-metric='loss'][data-series='4']")
        page.get_by_label("log scale").check()
        page.get_by_label("group by").select_option(label="train.lr")
        page.wait_for_function(  # one line per learning rate: "0.1 (2)"
            "() => [...document.querySelectorAll('.legend-item')]"
            ".every(e => / \\(\\d+\\)$/.test(e.textContent))"
        )
        for tab in ("Scatter", "Parallel coordinates"):
            page.get_by_role("tab", name=tab).click()
            page.wait_for_selector("canvas.scatter, canvas.parcoords")
        page.get_by_role("tab", name="Diff").click()
        page.wait_for_selector("table.diff-table")
        assert page.locator(".diff summary", has_text="params.yaml").count() == 1

        # the run page and its log; the tag's HTML is text
        page.goto(f"{ui.url}#/run/real-0")
        page.wait_for_selector("pre.log")
        assert "step 0 loss" in page.locator("pre.log").inner_text()
        assert page.locator(".chip", has_text=HOSTILE).count() == 1
        assert page.evaluate("() => window.__pwned") is None
        assert page.locator(".chart-cell[data-metric='acc'] canvas").count() == 1
        page.screenshot(path=str(tmp_path / "run.png"), full_page=True)

        # names git allows in a ref but that a URL mangles (',' and '%'), from the page's own link
        odd = ["com,ma", "pct%41x"]
        for name in odd:
            git(repo, "update-ref", f"refs/runs/{name}", "refs/runs/real-0")
        href = page.evaluate("n => import('/static/dom.js').then(m => m.compareHref(n))", odd)
        page.goto(f"{ui.url}{href}")
        page.wait_for_selector("text=Every run has the same values.")  # the same commit twice
        assert page.locator("h1").first.inner_text() == "Comparing 2 runs"
        assert page.locator(".chip").all_inner_texts() == odd
        assert page.locator(".error").count() == 0
        for name in odd:
            git(repo, "update-ref", "-d", f"refs/runs/{name}")
        # one diverged run (NaN) leaves an axis numeric instead of turning it into text
        kinds = page.evaluate("() => import('/static/parcoords.js').then(m => ["
                              "m.scaleOf([0.1, 'NaN', 0.3, 'Infinity', null]).kind,"
                              "m.scaleOf(['adam', 'sgd', 'NaN']).cats])")  # fmt: skip
        assert kinds == ["number", ["adam", "sgd"]]
        page.goto(f"{ui.url}#/run/%E0%A4%A")  # a malformed escape: not found, not stuck
        page.wait_for_selector(".error")

        # a run recorded while the table is open appears without a reload (newest first)
        page.evaluate("() => sessionStorage.clear()")
        page.goto(ui.url)
        page.wait_for_selector(".row.run")
        proc = run_gitexp(repo, "run", "-n", "arrived-late", "--", sys.executable, "train.py")
        assert proc.returncode == 0, proc.stderr
        page.wait_for_selector(".row.run .cell.name a >> text=arrived-late", timeout=15_000)
        assert page.locator(".actions .count").inner_text() == "51 runs"
        page.screenshot(path=str(tmp_path / "runs.png"))
        page.close()
    finally:
        ui.stop()
    # with --write, the run page tags a run and writes a note (its token goes with them)
    writer = UiServer(repo, "--write")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(f"{writer.url}#/run/arrived-late")
        page.get_by_label("new tag").fill("stage=prod")
        page.get_by_role("button", name="Add tag").click()
        page.wait_for_selector(".chip >> text=stage=prod")
        page.get_by_label("note").fill("the one to ship")
        page.get_by_role("button", name="Save note").click()
        page.wait_for_selector(".summary dd >> text=the one to ship")
        page.close()
    finally:
        writer.stop()
    shown = _show(repo, "arrived-late")[0]
    assert shown["tags"] == {"stage": "prod"} and shown["note"] == "the one to ship"
    assert (tmp_path / "runs.png").stat().st_size > 10_000
    foreign = [u for u in requests if not u.startswith(ui.url)]
    assert foreign == [], foreign
    # the bad filter (400) and the run that does not exist (404) are the errors expected
    expected = ("the server responded with a status of 400", "with a status of 404")
    assert [p for p in problems if not any(e in p for e in expected)] == [], problems
    assert len(problems) <= 2
