"""Reading runs from Python: `search_runs`, `get_run` and `diff` (what `gitexp diff --json`
prints). The same readers as the command line: one git process for many runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gitexp.core.compare import Entry, select
from gitexp.core.render import json_safe
from gitexp.dvc.data import collect
from gitexp.store.git import Repo
from gitexp.store.records import list_runs, read_environment
from gitexp.store.snapshot import read_pointer_files, read_states, resolve_target


def _repo(path: str) -> Repo:
    from gitexp.store.journal import recover

    repo = Repo.discover(path)
    recover(repo)
    return repo


def _order(order_by: str | Sequence[str] | None) -> tuple[str | None, bool]:
    """MLflow's 'metrics.acc DESC' (or a list of such; the first counts)."""
    if not order_by:
        return None, False
    first = order_by if isinstance(order_by, str) else order_by[0]
    key, _, direction = first.strip().partition(" ")
    return key, direction.strip().upper() == "DESC"


def search_runs(
    filter: str | None = None,  # noqa: A002 - MLflow's name
    order_by: str | Sequence[str] | None = None,
    max_results: int | None = None,
    path: str = ".",
) -> Any:
    """Runs as rows like MLflow's: `run_id` (the run name), `rev`, `status`, `start_time`,
    `end_time`, `params.*`, `metrics.*`, `tags.*`. A pandas DataFrame when pandas is
    installed, else a list of dicts. `filter` is `gitexp show --filter`'s language."""
    repo = _repo(path)
    with repo.batch_reader() as reader:
        runs = list_runs(repo, reader)
    records = {r.name: r.record or {} for r in runs}
    entries = [
        Entry(
            name=r.name,
            rev=r.rev,
            base=(r.record or {}).get("base"),
            created=(r.record or {}).get("started"),
            status=(r.record or {}).get("status"),
            duration=(r.record or {}).get("duration"),
            params=(r.record or {}).get("params") or {},
            metrics=(r.record or {}).get("metrics") or {},
            tags=(r.record or {}).get("tags") or {},
        )
        for r in runs
    ]
    key, descending = _order(order_by)
    chosen = select(entries, filter_expr=filter, sort_by=key, descending=descending,
                    limit=max_results)  # fmt: skip
    rows = []
    for entry in chosen:
        record = records[entry.name]
        row: dict[str, Any] = {
            "run_id": entry.name,
            "rev": entry.rev,
            "status": entry.status,
            "start_time": record.get("started"),
            "end_time": record.get("ended"),
        }
        for kind in ("params", "metrics"):
            for flat in getattr(entry, kind).values():
                row.update({f"{kind}.{k}": v for k, v in flat.items()})
        row.update({f"tags.{k}": v for k, v in entry.tags.items()})
        rows.append(row)
    try:
        import pandas
    except ImportError:
        return rows
    return pandas.DataFrame(rows)


def get_run(name_or_rev: str, path: str = ".") -> dict[str, Any]:
    """A run's record, params, metrics, histories, tags and artifacts (tracked data)."""
    from gitexp.report.gather import histories as read_histories

    repo = _repo(path)
    target = resolve_target(repo, name_or_rev)
    with repo.batch_reader() as reader:
        (state,) = read_states(repo, [target], reader)
        histories = read_histories(repo, target, reader)
        data = collect(read_pointer_files(repo, target, reader))
        # where it ran: the environment the run's tree shares with others, in the record
        record = read_environment(reader, target.rev, state.record) if state.record else {}
    return {
        "name": target.run or target.label,
        "rev": target.rev,
        "record": record,
        "params": state.params,
        "metrics": state.metrics,
        "histories": histories,
        "tags": record.get("tags") or {},
        "artifacts": {path: entry.as_json() for path, entry in data.items()},
    }


def diff(a: str = "HEAD", b: str = "workspace", path: str = ".") -> dict[str, Any]:
    """What `gitexp diff --json A B` prints, as Python data (NaN as the string "NaN")."""
    from gitexp.core.compare import diff_json
    from gitexp.dvc.data import data_json
    from gitexp.store.listing import diff_structure

    changes, data_changes = diff_structure(_repo(path), a, b, False, lambda _msg: None)
    return json_safe({**diff_json(changes), "data": data_json(data_changes)})
