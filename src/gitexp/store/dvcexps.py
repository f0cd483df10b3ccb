"""DVC's experiments (`dvc exp run`), read where they are: refs under `refs/exps/`.

DVC keeps an experiment as a commit on `refs/exps/<baseline[:2]>/<baseline[2:]>/<name>` whose
parent is the baseline commit. gitexp lists them beside its runs and accepts their names
wherever a run is named, so a DVC user's history is one command away.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gitexp.store.git import Repo

EXPS_PREFIX = "refs/exps/"
_EXP_REF = re.compile(r"^refs/exps/([0-9a-f]{2})/([0-9a-f]{38,62})/([^/]+)$")


@dataclass(frozen=True)
class DvcExperiment:
    name: str
    ref: str
    rev: str  # the experiment's commit
    baseline: str  # the commit it was run on
    created: str  # the commit's date, ISO 8601


def list_experiments(repo: Repo) -> list[DvcExperiment]:
    """Every DVC experiment, newest first, from one for-each-ref (DVC's own bookkeeping refs,
    such as refs/exps/exec/ and refs/exps/celery/, are not experiments)."""
    out = repo.text(
        ["for-each-ref", "--sort=-committerdate",
         "--format=%(refname)%00%(objectname)%00%(committerdate:iso-strict)",
         "--end-of-options", EXPS_PREFIX]
    )  # fmt: skip
    found = []
    for line in out.splitlines():
        ref, oid, date = line.split("\0")
        match = _EXP_REF.match(ref)
        if match:
            baseline = match.group(1) + match.group(2)
            found.append(DvcExperiment(match.group(3), ref, oid, baseline, date))
    return found


def find_experiment(repo: Repo, name: str) -> DvcExperiment | None:
    """The DVC experiment of that name (the newest, if several baselines have one)."""
    return next((e for e in list_experiments(repo) if e.name == name), None)
