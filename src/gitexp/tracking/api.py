"""Reading runs from Python with MLflow's names: `search_runs` (a pandas DataFrame with
MLflow's columns, or a list of `Run`), `get_run` (a `Run` with `.info` and `.data`),
`get_metric_history`, and `diff` (what `gitexp diff --json` prints).

The same readers as the command line: one `for-each-ref` and one batched read for all runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gitexp.core.render import json_safe
from gitexp.errors import UsageError
from gitexp.store.git import Repo
from gitexp.tracking import context, filters
from gitexp.tracking.entities import (
    STATUS_TO_MLFLOW,
    Dataset,
    DatasetInput,
    Metric,
    Run,
    RunData,
    RunInfo,
    RunInputs,
    ViewType,
)
from gitexp.tracking.experiments import group_of

API_PARAMS = "dvclive/params.yaml"
API_METRICS = "dvclive/metrics.json"


def _repo(path: str | None) -> Repo:
    from gitexp.store.journal import recover

    repo = Repo.discover(path or context.tracking_path())
    recover(repo)
    return repo


def _millis(iso: Any) -> int | None:
    if not isinstance(iso, str):
        return None
    try:
        return int(datetime.fromisoformat(iso).timestamp() * 1000)
    except ValueError:
        return None


def _merged(sections: Any, last: str) -> dict[str, Any]:
    """Per-file flat values as one dict (MLflow has no files); the API's file wins."""
    if not isinstance(sections, dict):
        return {}
    merged: dict[str, Any] = {}
    for path in sorted(sections, key=lambda p: p == last):
        flat = sections[path]
        if isinstance(flat, dict):
            merged.update(flat)
    return merged


def param_text(value: Any) -> str:
    """A param as MLflow stores it: str() of the logged value."""
    return str(value)


def artifact_uri(repo: Repo, run_id: str) -> str:
    return f"gitexp://{repo.root.as_posix()}?run={run_id}"


def run_entity(
    repo: Repo,
    name: str,
    rev: str | None,
    record: dict[str, Any] | None,
    params: Any = None,
    metrics: Any = None,
    meta: Any = None,
) -> Run:
    """MLflow's Run for a recorded run (or a plain revision, whose record is empty); `meta`
    holds the tags set or deleted after it ended (git notes)."""
    record = record or {}
    params = record.get("params") if params is None else params
    metrics = record.get("metrics") if metrics is None else metrics
    author = str(record.get("author") or "")
    user = author.split(" <", 1)[0]
    run_name = str(record.get("run_name") or name.rsplit("/", 1)[-1])
    tags = {str(k): str(v) for k, v in (record.get("tags") or {}).items()}
    if meta is not None:
        tags = meta.apply_to(tags)
    command = [str(c) for c in record.get("command") or []]
    source = (
        command[1]
        if len(command) > 1 and "python" in command[0].rsplit("/", 1)[-1]
        else (" ".join(command))
    )
    system = {
        "mlflow.runName": run_name,
        "mlflow.user": user,
        "mlflow.source.name": source,
        "mlflow.source.type": "LOCAL",
        "mlflow.source.git.commit": str(record.get("base") or ""),
    }
    if record.get("branch"):
        system["mlflow.source.git.branch"] = str(record["branch"]).removeprefix("refs/heads/")
    if record.get("parent"):
        system["mlflow.parentRunId"] = str(record["parent"])
    metric_values = {
        k: float(v)
        for k, v in _merged(metrics, API_METRICS).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    inputs = [
        DatasetInput(
            Dataset(
                name=str(i.get("name", "")),
                digest=str(i.get("digest", "")),
                source_type=str(i.get("source_type", "")),
                source=str(i.get("source", "")),
            ),
            tags={
                **(i.get("tags") or {}),
                **({"mlflow.data.context": i["context"]} if i.get("context") else {}),
            },
        )
        for i in record.get("datasets") or []
        if isinstance(i, dict)
    ]
    status = str(record.get("status") or "success")
    return Run(
        root=str(repo.root),
        info=RunInfo(
            run_id=name,
            run_name=run_name,
            experiment_id=group_of(name),
            user_id=user,
            status=STATUS_TO_MLFLOW.get(status, status.upper()),
            start_time=_millis(record.get("started")),
            end_time=_millis(record.get("ended")),
            artifact_uri=artifact_uri(repo, name),
        ),
        data=RunData(
            metrics=metric_values,
            params={k: param_text(v) for k, v in _merged(params, API_PARAMS).items()},
            tags={**system, **tags},
        ),
        inputs=RunInputs(inputs),
        rev=rev,
        record=record,
    )


def _experiment_scope(
    repo: Repo,
    experiment_ids: Sequence[str] | str | None,
    experiment_names: Sequence[str] | None,
    search_all: bool,
) -> set[str] | None:
    """The experiment ids to search, or None for all of them. Without any, the current
    experiment (set_experiment) as in MLflow, or every run when none was set."""
    if search_all:
        return None
    ids: set[str] = set()
    if experiment_ids is not None:
        ids |= {
            str(i)
            for i in ([experiment_ids] if isinstance(experiment_ids, str) else experiment_ids)
        }
    if experiment_names:
        from gitexp.store.records import run_names
        from gitexp.tracking import experiments as store

        known = store.list_experiments(repo, run_names(repo)[0])
        for name in experiment_names:
            ids |= {e.experiment_id for e in known if e.name == name}
        if not ids:
            return set()
    if ids:
        return ids
    current = context.current_experiment_id()
    return {current} if current is not None else None


def _looks_like_filter(text: str) -> bool:
    upper = f" {text.upper()} "
    return any(c in text for c in "<>=!") or " LIKE " in upper or " IN " in upper


def search_runs(
    experiment_ids: Sequence[str] | str | None = None,
    filter_string: str = "",
    run_view_type: int = ViewType.ACTIVE_ONLY,
    max_results: int = 100_000,
    order_by: str | Sequence[str] | None = None,
    output_format: str = "pandas",
    search_all_experiments: bool = False,
    experiment_names: Sequence[str] | None = None,
    *,
    filter: str | None = None,  # noqa: A002 - gitexp's earlier name for filter_string
    path: str | None = None,
) -> Any:
    """MLflow's `search_runs`: a DataFrame with `run_id`, `experiment_id`, `status`,
    `artifact_uri`, `start_time`, `end_time`, `metrics.*`, `params.*` (strings) and
    `tags.*`, newest first; `output_format="list"` gives `Run` objects.

    A string as first argument is read as a filter when it has a comparison in it
    (`search_runs("metrics.acc > 0.9")`), as gitexp's earlier signature had it."""
    if isinstance(experiment_ids, str) and _looks_like_filter(experiment_ids):
        filter_string, experiment_ids = experiment_ids, None
    filter_string = filter if filter is not None else filter_string
    if output_format not in ("pandas", "list"):
        raise UsageError(f"output_format must be 'pandas' or 'list', not '{output_format}'")
    runs = _search(_repo(path), experiment_ids, filter_string, run_view_type, max_results,
                   order_by, search_all_experiments, experiment_names)  # fmt: skip
    if output_format == "list":
        return runs
    return runs_frame(runs)


def _search(
    repo: Repo,
    experiment_ids: Sequence[str] | str | None,
    filter_string: str | None,
    run_view_type: int,
    max_results: int | None,
    order_by: str | Sequence[str] | None,
    search_all: bool,
    experiment_names: Sequence[str] | None,
) -> list[Run]:
    from gitexp.store.index import run_records
    from gitexp.store.notes import read_meta

    clauses = filters.parse(filter_string)
    ordering = filters.parse_order_by(order_by)
    if run_view_type == ViewType.DELETED_ONLY:
        return []
    scope = _experiment_scope(repo, experiment_ids, experiment_names, search_all)
    with repo.batch_reader() as reader:
        listed = run_records(repo, reader)  # through the run index
        metas = read_meta(repo, reader, [rev for _, rev, _ in listed])
    runs = [
        run_entity(repo, name, rev, record, meta=metas.get(rev)) for name, rev, record in listed
    ]
    if scope is not None:
        runs = [r for r in runs if r.info.experiment_id in scope]
    runs = [r for r in runs if filters.matches(clauses, lambda k, r=r: lookup(r, k))]
    runs.sort(key=lambda r: r.info.run_id)
    runs.sort(key=lambda r: -(r.info.start_time or 0))
    for key, descending in reversed(ordering):
        present = [r for r in runs if filters.sort_value(lookup(r, key))[0] < 2]
        missing = [r for r in runs if filters.sort_value(lookup(r, key))[0] == 2]
        present.sort(key=lambda r, k=key: filters.sort_value(lookup(r, k)), reverse=descending)
        runs = present + missing
    return runs[:max_results] if max_results is not None else runs


_ATTRIBUTE_OF = {
    "run_id": lambda r: r.info.run_id,
    "run_name": lambda r: r.info.run_name,
    "name": lambda r: r.info.run_name,
    "status": lambda r: r.info.status,
    "start_time": lambda r: r.info.start_time,
    "created": lambda r: r.info.start_time,
    "created_at": lambda r: r.info.start_time,
    "end_time": lambda r: r.info.end_time,
    "user_id": lambda r: r.info.user_id,
    "artifact_uri": lambda r: r.info.artifact_uri,
    "experiment_id": lambda r: r.info.experiment_id,
    "lifecycle_stage": lambda r: r.info.lifecycle_stage,
}


def lookup(run: Run, key: filters.Key) -> Any:
    """A run's value for a filter or order_by key."""
    if key.kind == "metrics":
        return run.data.metrics.get(key.name)
    if key.kind == "params":
        return run.data.params.get(key.name)
    if key.kind == "tags":
        return run.data.tags.get(key.name)
    if key.kind == "attributes":
        if key.name not in _ATTRIBUTE_OF:
            raise UsageError(f"unknown attribute '{key.name}': use {', '.join(_ATTRIBUTE_OF)}")
        return _ATTRIBUTE_OF[key.name](run)
    if key.name in _ATTRIBUTE_OF:
        return _ATTRIBUTE_OF[key.name](run)
    for values in (run.data.metrics, run.data.params, run.data.tags):
        if key.name in values:
            return values[key.name]
    return None


def runs_frame(runs: Sequence[Run]) -> Any:
    """MLflow's DataFrame of runs, column for column (params and tags as strings or None,
    metrics as floats or NaN, times as UTC datetimes)."""
    import pandas

    info: dict[str, list[Any]] = {
        k: []
        for k in ("run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time")
    }
    columns: dict[str, dict[str, list[Any]]] = {"metrics": {}, "params": {}, "tags": {}}
    nulls = {"metrics": math.nan, "params": None, "tags": None}
    for i, run in enumerate(runs):
        info["run_id"].append(run.info.run_id)
        info["experiment_id"].append(run.info.experiment_id)
        info["status"].append(run.info.status)
        info["artifact_uri"].append(run.info.artifact_uri)
        info["start_time"].append(pandas.to_datetime(run.info.start_time, unit="ms", utc=True))
        info["end_time"].append(pandas.to_datetime(run.info.end_time, unit="ms", utc=True))
        for kind, values in (
            ("metrics", run.data.metrics),
            ("params", run.data.params),
            ("tags", run.data.tags),
        ):
            table = columns[kind]
            for key in table:
                table[key].append(values.get(key, nulls[kind]))
            for key in values.keys() - table.keys():
                table[key] = [nulls[kind]] * i + [values[key]]
    data: dict[str, list[Any]] = dict(info)
    for kind in ("metrics", "params", "tags"):
        for key in sorted(columns[kind]):
            data[f"{kind}.{key}"] = columns[kind][key]
    return pandas.DataFrame(data)


def get_run(run_id: str, path: str | None = None) -> Run:
    """A run (or any git revision) as MLflow's Run: `run.info.run_id`, `run.data.metrics`."""
    from gitexp.store.notes import read_meta
    from gitexp.store.records import read_environment
    from gitexp.store.snapshot import read_states, resolve_target

    repo = _repo(path)
    target = resolve_target(repo, run_id)
    with repo.batch_reader() as reader:
        (state,) = read_states(repo, [target], reader)
        meta = read_meta(repo, reader, [target.rev or ""]).get(target.rev or "")
        # where it ran (Python, packages...): the environment its tree shares, in the record
        record = read_environment(reader, target.rev, state.record) if state.record else None
    return run_entity(repo, target.run or target.label, target.rev, record,
                      state.params, state.metrics, meta)  # fmt: skip


def get_metric_history(run_id: str, key: str, path: str | None = None) -> list[Metric]:
    """Every logged value of a metric, oldest first; a metric logged without a step is one
    value at step 0, as in MLflow."""
    from gitexp.store.snapshot import resolve_target

    repo = _repo(path)
    target = resolve_target(repo, run_id)
    history_path = f"dvclive/plots/metrics/{key}.tsv"
    with repo.batch_reader() as reader:
        data = reader.read(f"{target.rev}:{history_path}") if target.rev else None
    if data is None:
        run = get_run(run_id, path=str(repo.root))
        if key not in run.data.metrics:
            return []
        return [Metric(key, run.data.metrics[key], run.info.end_time or 0, 0)]
    lines = [line.split("\t") for line in data.decode("utf-8", "replace").splitlines() if line]
    header, rows = lines[0], lines[1:]
    history = []
    for row in rows:
        cells = dict(zip(header, row, strict=False))
        try:
            value = float(row[-1])
            step = int(float(cells.get("step", 0)))
            stamp = int(float(cells.get("timestamp", 0)))
        except ValueError:
            continue
        history.append(Metric(key, value, stamp, step))
    return history


def diff(a: str = "HEAD", b: str = "workspace", path: str | None = None) -> dict[str, Any]:
    """What `gitexp diff --json A B` prints, as Python data (NaN as the string "NaN")."""
    from gitexp.core.compare import diff_json
    from gitexp.dvc.data import data_json
    from gitexp.store.listing import diff_structure

    changes, data_changes = diff_structure(_repo(path), a, b, False, lambda _msg: None)
    return json_safe({**diff_json(changes), "data": data_json(data_changes)})
