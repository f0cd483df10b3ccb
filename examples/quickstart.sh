#!/usr/bin/env bash
# The main job: set up .venv, run the bundled example twice with different learning rates,
# then list the runs and compare them. Each run is a commit on refs/runs/<name>.
# The example's committed results (dvclive/) are put back afterwards when they were
# unchanged before: the runs keep their own, and the clone's tracked files stay as they were.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh example
export PATH="$PWD/.venv/bin:$PATH"
stamp=$(date +%Y%m%d-%H%M%S)
slow="lr-0.001-$stamp"
fast="lr-0.01-$stamp"
baseline_clean=0
git diff --quiet HEAD -- dvclive && baseline_clean=1

echo "== gitexp run -n $slow -S train.lr=0.001 -- python examples/train.py"
gitexp run -n "$slow" -S train.lr=0.001 -- python examples/train.py
echo
echo "== gitexp run -n $fast -S train.lr=0.01 -- python examples/train.py"
gitexp run -n "$fast" -S train.lr=0.01 -- python examples/train.py
if [ "$baseline_clean" = 1 ]; then
  git restore --source=HEAD --worktree -- dvclive
fi
echo
echo "== gitexp show --only-changed"
gitexp show --only-changed
echo
echo "== gitexp diff $slow $fast"
gitexp diff "$slow" "$fast"
