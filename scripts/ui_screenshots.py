"""Regenerates the README's screenshots of `gitexp ui` (docs/ui-*.png) from real runs: a clone
of this repository in a temporary directory, a small sweep of the bundled example (learning
rate x data seed), the UI on a free port, and headless Chromium.

    .venv/bin/python scripts/ui_screenshots.py [OUTPUT_DIR]   (default: docs/)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from browser import launch  # noqa: E402
from ui_fixtures import UiServer  # noqa: E402

# As a user's shell would have it: the virtualenv first on PATH, a plain identity.
ENV = {
    **os.environ,
    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    "GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada", "GIT_COMMITTER_EMAIL": "ada@example.com",
    "DVC_NO_ANALYTICS": "1",
}  # fmt: skip


def sh(args: list[str], cwd: Path) -> None:
    subprocess.run(args, cwd=cwd, env=ENV, check=True, stdout=subprocess.DEVNULL)


def make_demo(root: Path) -> Path:
    demo = root / "demo"
    sh(["git", "clone", "-q", str(ROOT), str(demo)], root)
    sh(["git", "checkout", "-q", "-B", "main"], demo)
    sh(["gitexp", "init"], demo)  # the example stores its model with DVC
    for lr in ("0.001", "0.003", "0.01"):
        for seed in ("1", "2"):
            name = f"sweep/lr-{lr}-seed-{seed}"
            sh(["gitexp", "run", "-n", name, "-S", f"train.lr={lr}", "-S", f"data.seed={seed}",
                "--", "python", "examples/train.py"], demo)  # fmt: skip
    return demo


def main() -> None:
    from playwright.sync_api import sync_playwright

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        demo = make_demo(Path(tmp))
        ui = UiServer(demo)
        try:
            with sync_playwright() as pw:
                browser = launch(pw)
                page = browser.new_page(viewport={"width": 1360, "height": 760})
                page.goto(ui.url)
                page.wait_for_selector(".row.run")
                time.sleep(1.0)  # the history columns fill in
                page.screenshot(path=str(out / "ui-runs.png"))

                names = page.locator(".row.run .cell.name a").all_inner_texts()
                page.goto(f"{ui.url}#/compare?runs={','.join(sorted(names))}")
                page.get_by_role("tab", name="Charts").click()
                page.get_by_label("group by").select_option(label="train.lr")
                page.wait_for_selector(".chart-cell canvas")
                page.screenshot(path=str(out / "ui-compare.png"))

                page.goto(f"{ui.url}#/run/sweep%2Flr-0.003-seed-1")
                page.wait_for_selector(".chart-cell canvas")
                page.set_viewport_size({"width": 1360, "height": 1240})
                page.screenshot(path=str(out / "ui-run.png"))
                browser.close()
        finally:
            ui.stop()
    for name in ("ui-runs.png", "ui-compare.png", "ui-run.png"):
        print(out / name)


if __name__ == "__main__":
    main()
