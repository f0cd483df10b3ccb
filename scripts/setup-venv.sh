#!/usr/bin/env bash
# Creates .venv (if missing) and installs gitexp into it with the given extras.
# Usage: scripts/setup-venv.sh EXTRAS   (e.g. "example" or "dev")
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "gitexp needs Python 3.10 or newer as '$python' (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
# (grep drops pip's notices about configured package indexes that do not exist)
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[${1:-dev}]" \
  2> >(grep -v "^WARNING: Location .* is ignored" >&2)
