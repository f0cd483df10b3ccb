#!/usr/bin/env bash
# Regenerates the report examples of the README and docs/: in a scratch clone of this
# repository, a branch trains the bundled example for fewer epochs and tries two learning
# rates; then `report` (markdown and HTML, with screenshots), `report --history` and `bisect`.
# Needs the dev extra (.venv from tests/run.sh) and chromium. Writes into docs/ and /tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export PATH="$root/.venv/bin:$PATH"
work=$(mktemp -d /tmp/gitexp-report-demo.XXXXXX)
git clone -q "$root" "$work/repo" && cd "$work/repo"
git checkout -q -B main && git remote remove origin
git commit -q --allow-empty -m "Baseline: 15 epochs"
quiet() { "$@" > /dev/null 2>&1; }
quiet gitexp run -n main-baseline -- python examples/train.py
git checkout -q -b fewer-epochs
sed -i 's/epochs: 15/epochs: 12/' params.yaml
git commit -qam "Train for 12 epochs instead of 15"
quiet gitexp run -n feat-baseline -- python examples/train.py
quiet gitexp run -n feat-lr-0.01 -S train.lr=0.01 -- python examples/train.py
quiet gitexp run -n feat-lr-0.003 -S train.lr=0.003 -- python examples/train.py
git checkout -q refs/runs/feat-baseline -- dvclive
git commit -qm "Results of 12 epochs"
checks=(--check "acc >= base.acc - 0.005" --check "loss <= 0.3")
gitexp report --metric acc "${checks[@]}" -o "$work/report.md" || echo "report exited $?"
gitexp report --metric acc "${checks[@]}" --format html -o "$work/report.html" || true
gitexp report --history main~1..fewer-epochs --metric acc > "$work/history.md"
gitexp bisect --metric acc --good main --bad fewer-epochs -- python examples/train.py \
  > "$work/bisect.txt" 2> /dev/null
python - "$work/report.html" "$root/docs" <<'PY'
import shutil, sys
from playwright.sync_api import sync_playwright
page_path, docs = sys.argv[1], sys.argv[2]
with sync_playwright() as pw:
    browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
    for scheme, name, full in (("light", "report.png", True), ("dark", "report-dark.png", False)):
        page = browser.new_page(viewport={"width": 1000, "height": 900}, color_scheme=scheme)
        page.goto("file://" + page_path)
        page.screenshot(path=f"{docs}/{name}", full_page=full)
    browser.close()
PY
echo "outputs in $work: report.md, report.html, history.md, bisect.txt; screenshots in docs/"
