#!/usr/bin/env bash
# Regenerates the README's examples of managing and sharing runs (carried metrics, apply as
# a merge, reproduce, tags and notes, push and pull, remove, a refused hostile run) in a
# scratch clone of this repository with a bare origin and a local DVC remote. Prints each
# command and its real output.
# Usage: bash examples/workflow-demo.sh [SCRATCH_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bash "$here/scripts/setup-venv.sh" example >/dev/null
export PATH="$here/.venv/bin:$PATH"
scratch="${1:-$(mktemp -d)}"
mkdir -p "$scratch"
cd "$scratch"
git init -q --bare -b main origin.git
git clone -q "$here" demo && cd demo
git remote set-url origin "$scratch/origin.git"
git push -q origin HEAD:main
dvc remote add -q -d store "$scratch/dvc-store" && git commit -qam "DVC remote"
git push -q origin HEAD:main
show() { echo "\$ $*"; "$@" 2>&1 | sed "s|$scratch|/tmp/demo|g" || true; echo; }

# a run whose command fails: the metrics files it did not write are not its own
show gitexp run -n faster -S train.lr=0.003 -- python examples/train.py
show gitexp run -n broken -- python -c "raise SystemExit('no GPU found')"
show gitexp show --only-changed --columns 'train.*' --columns acc
git restore --source=HEAD --worktree -- dvclive

# apply brings a run's change onto a newer HEAD as a merge
show gitexp run -n fewer-epochs -S train.epochs=10 -- python examples/train.py
git restore --source=HEAD --worktree -- dvclive
printf '\n# a later change\n' >> examples/train.py && git commit -qam "a later change"
show gitexp apply fewer-epochs
show git status --short
git checkout -q -- . && git clean -qfd -e model.pkl

# tags and notes after the fact
show gitexp tag fewer-epochs stage=candidate
show gitexp note fewer-epochs "quicker, 0.3% less accurate"
show gitexp show fewer-epochs faster --drop '*'
show gitexp rename broken broken-no-gpu

# sharing
show gitexp push
show gitexp push
show gitexp remove broken-no-gpu --remote origin

# a teammate's clone
cd "$scratch" && git clone -q origin.git teammate && cd teammate
show gitexp pull
show gitexp reproduce fewer-epochs
