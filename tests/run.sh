#!/usr/bin/env bash
# Sets up .venv with the dev extra, then runs the linter and the test suite.
# Extra arguments go to pytest (e.g. bash tests/run.sh -k faults).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh dev
.venv/bin/ruff check src tests bench examples
.venv/bin/ruff format --check src tests bench examples
# pytest exits 5 when it collected no test: that fails this script too.
.venv/bin/python -m pytest "$@"
