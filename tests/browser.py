"""Real renderers for the report's output: the Mermaid library (npm, tests/tools) in the
Chromium that Playwright drives. Tests skip without them, except under CI, which installs
them (tests/run.sh)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

MERMAID = Path(__file__).parent / "tools" / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def needs(present: bool, reason: str) -> None:
    """Skip without a tool, but never under CI, whose script installs it."""
    if not present:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}, and CI must run this test")
        pytest.skip(reason)


def launch(pw: Any) -> Any:
    return pw.chromium.launch(
        executable_path=chromium(),
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--no-first-run", "--disable-sync"],
    )  # fmt: skip


class Mermaid:
    """Renders Mermaid source with the real library; returns the SVG or raises with the
    library's parse error."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.count = 0

    def render(self, source: str) -> str:
        self.count += 1
        result = self.page.evaluate(
            """async ([id, text]) => {
                try { return {svg: (await mermaid.render(id, text)).svg}; }
                catch (e) { return {error: String(e.message || e)}; } }""",
            [f"chart{self.count}", source],
        )
        if "error" in result:
            raise AssertionError(f"Mermaid cannot render this:\n{source}\n{result['error']}")
        return result["svg"]

    def line_points(self, source: str) -> list[int]:
        """How many points each line of an xychart draws (a path stops at its end)."""
        svg = self.render(source)
        paths = re.findall(r'<g class="line-plot-\d+">(.*?)</g>', svg, re.S)
        counts = []
        for group in paths:
            d = re.search(r' d="([^"]*)"', group)
            points = re.findall(r"[ML]\s*(-?[\d.]+),(-?[\d.]+)", d[1] if d else "")
            counts.append(len(points))
        return counts


def blocks(markdown: str) -> list[str]:
    """The Mermaid blocks of a markdown text."""
    return re.findall(r"^```mermaid\n(.*?)^```$", markdown, re.S | re.M)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One Chromium for the whole session (Playwright's sync API allows one per thread)."""
    try:
        from playwright import sync_api as playwright
    except ImportError:
        playwright = None
    needs(playwright is not None, "playwright is not installed (the dev extra has it)")
    needs(chromium() is not None, "chromium is not installed (tests/run.sh installs it as root)")
    with playwright.sync_playwright() as pw:
        chrome = launch(pw)
        yield chrome
        chrome.close()


@pytest.fixture(scope="session")
def mermaid(browser: Any) -> Iterator[Mermaid]:
    needs(MERMAID.exists(), "mermaid is not installed (tests/run.sh runs npm install)")
    page = browser.new_page()
    page.set_content("<html><body></body></html>")
    page.add_script_tag(path=str(MERMAID))
    page.evaluate("mermaid.initialize({startOnLoad: false, securityLevel: 'strict'})")
    yield Mermaid(page)
    page.close()
