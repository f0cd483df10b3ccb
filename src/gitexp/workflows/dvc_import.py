"""`gitexp import-dvc`: DVC experiments (`refs/exps/`) become gitexp runs (`refs/runs/`).

Each experiment's commit keeps its tree; the run's commit is that tree plus a run record, on
the experiment's baseline, so `show`, `diff`, `report`, `push` and the Python API treat it as
any other run. The experiment's refs are left as they are, so DVC still sees them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gitexp import __version__
from gitexp.core.names import RUNS_PREFIX, check_free, validate_name
from gitexp.dvc.data import collect
from gitexp.errors import UsageError
from gitexp.store.dvcexps import DvcExperiment, list_experiments
from gitexp.store.git import Repo
from gitexp.store.records import run_names
from gitexp.store.snapshot import RECORD_PATH, Target, read_pointer_files, read_states

Warn = Callable[[str], None]


@dataclass
class Imported:
    created: dict[str, str] = field(default_factory=dict)  # run name -> experiment name
    skipped: dict[str, str] = field(default_factory=dict)  # experiment name -> why


def import_experiments(repo: Repo, names: Sequence[str], prefix: str) -> Imported:
    """Imports the named experiments (all when none are named); refs in one transaction."""
    experiments = list_experiments(repo)
    if names:
        known = {e.name: e for e in experiments}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise UsageError(f"no DVC experiment named {', '.join(unknown)}: see 'dvc exp list'")
        experiments = [known[n] for n in names]
    result = Imported()
    existing, others = run_names(repo)
    chosen: dict[str, DvcExperiment] = {}
    for experiment in experiments:
        try:
            name = validate_name(prefix + experiment.name)
            check_free(name, [*existing, *chosen], others)
        except UsageError as exc:
            reason = str(exc).split(": choose another name")[0]
            result.skipped[experiment.name] = f"{reason} (--prefix imports it under another name)"
            continue
        chosen[name] = experiment
    refs = {}
    with repo.batch_reader() as reader:
        targets = [Target(e.name, e.rev) for e in chosen.values()]
        states = read_states(repo, targets, reader) if targets else []
        for (name, experiment), state in zip(chosen.items(), states, strict=True):
            data = collect(read_pointer_files(repo, state.target, reader))
            record = _record(name, experiment, state.params, state.metrics, data)
            refs[RUNS_PREFIX + name] = _commit(repo, experiment, record)
            result.created[name] = experiment.name
    repo.create_refs(refs, "gitexp import-dvc")
    return result


def _record(
    name: str, experiment: DvcExperiment, params: dict, metrics: dict, data: dict
) -> dict[str, object]:
    return {
        "version": 1,
        "name": name,
        "command": ["dvc", "repro"],  # what DVC ran, and what reproduce re-runs
        "status": "success",
        "exit_code": 0,
        "started": experiment.created,
        "ended": experiment.created,
        "duration": None,
        "base": experiment.baseline,
        "branch": None,
        "gitexp": __version__,
        "overrides": [],
        "outs": [],
        "tags": {"dvc_experiment": experiment.name},
        "message": f"imported from {experiment.ref}",
        "params": params,
        "metrics": metrics,
        "errors": {},
        "data": {path: entry.as_json() for path, entry in sorted(data.items())},
    }


def _commit(repo: Repo, experiment: DvcExperiment, record: dict[str, object]) -> str:
    """The experiment's tree with the record added, on the experiment's baseline."""
    blob = repo.write_blob_data({RECORD_PATH: (json.dumps(record, indent=2) + "\n").encode()})
    with repo.temp_index() as index:
        repo.git(["read-tree", experiment.rev], env=index.env, write=True)
        index.add_blobs(blob)
        tree = index.write_tree()
    message = (
        f"run {record['name']}: dvc experiment {experiment.name}\n\n"
        f"Gitexp-Run: {record['name']}\nStatus: success\nImported-From: {experiment.ref}\n"
    )
    return repo.commit_tree(tree, experiment.baseline, message, {})
