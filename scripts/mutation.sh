#!/usr/bin/env bash
# Mutation testing of the pure core (src/gitexp/core/ and the record schema) with mutmut:
# each mutant is a small change to the code, and a good suite fails on it. Not part of CI
# (several minutes on 2 cores). Prints the surviving mutants and the kill rate.
# Usage: bash scripts/mutation.sh   (extra arguments go to `mutmut run`)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh dev,mutation
rm -rf mutants
.venv/bin/mutmut run "$@" || true
.venv/bin/mutmut results
.venv/bin/mutmut export-cicd-stats >/dev/null
.venv/bin/python - <<'PY'
import json
stats = json.load(open("mutants/mutmut-cicd-stats.json"))
tried = stats["killed"] + stats["survived"] + stats.get("timeout", 0) + stats.get("suspicious", 0)
caught = tried - stats["survived"]
print(f"mutants: {stats['total']}, killed or timed out: {caught} of {tried} tested "
      f"({100 * caught / max(tried, 1):.1f}%), not covered by a test: {stats['no_tests']}")
PY
