"""MLflow's own UI and clients on git-stored runs: a tracking store and an artifact
repository that MLflow loads from plugins (the `gitexp[mlflow]` extra registers them):

    mlflow ui --backend-store-uri gitexp:///path/to/repo
    MlflowClient("gitexp:///path/to/repo").search_runs(["0"])

Read-only: experiments, runs (params, metrics with histories, tags, inputs) and artifacts come
from gitexp's readers; every write is refused with a message. MLflow's run and experiment ids
allow letters, digits, '_' and '-', so gitexp's names are escaped ('/' -> '_1', '.' -> '_2',
'_' -> '_0'): `iris/rf-1` is `iris_1rf-1` in MLflow's URLs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any
from urllib.parse import parse_qs, urlparse

from mlflow import entities as ml
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST
from mlflow.store.artifact.artifact_repo import ArtifactRepository
from mlflow.store.entities import PagedList
from mlflow.store.tracking.abstract_store import AbstractStore

from gitexp.errors import GitexpError
from gitexp.store.git import Repo
from gitexp.tracking import api, artifacts, context, fluent
from gitexp.tracking import entities as gx

_ESCAPES = {"_": "_0", "/": "_1", ".": "_2"}
_UNESCAPES = {v[1]: k for k, v in _ESCAPES.items()}


def to_mlflow_id(name: str) -> str:
    return "".join(_ESCAPES.get(c, c) for c in name)


def from_mlflow_id(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "_" and i + 1 < len(text) and text[i + 1] in _UNESCAPES:
            out.append(_UNESCAPES[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _not_found(message: str) -> MlflowException:
    return MlflowException(message, error_code=RESOURCE_DOES_NOT_EXIST)


def _read_only() -> MlflowException:
    return MlflowException(
        "gitexp's MLflow store is read-only: record runs with gitexp (import gitexp as mlflow)",
        error_code=INVALID_PARAMETER_VALUE,
    )


class GitexpStore(AbstractStore):
    """MLflow's tracking store over a git repository's runs."""

    def __init__(self, store_uri: str | None = None, artifact_uri: str | None = None) -> None:
        super().__init__()
        self.path = context.repo_path_of(store_uri or ".")
        self.repo = Repo.discover(self.path)

    def _call(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        previous = context._state["uri"]
        context._state["uri"] = str(self.repo.root)
        try:
            return func(*args, **kwargs)
        except GitexpError as exc:
            raise _not_found(str(exc)) from None
        finally:
            context._state["uri"] = previous

    # --- conversions ----------------------------------------------------------------------

    def _run(self, run: gx.Run) -> ml.Run:
        info = run.info
        inputs = [
            ml.DatasetInput(
                ml.Dataset(
                    d.dataset.name, d.dataset.digest, d.dataset.source_type, d.dataset.source
                ),
                [ml.InputTag(k, v) for k, v in d.tags.items()],
            )
            for d in run.inputs.dataset_inputs
        ]
        tags = dict(run.data.tags)
        if "mlflow.parentRunId" in tags:
            tags["mlflow.parentRunId"] = to_mlflow_id(tags["mlflow.parentRunId"])
        return ml.Run(
            ml.RunInfo(
                run_id=to_mlflow_id(info.run_id),
                experiment_id=to_mlflow_id(info.experiment_id),
                user_id=info.user_id,
                status=info.status,
                start_time=info.start_time or 0,
                end_time=info.end_time,
                lifecycle_stage="active",
                artifact_uri=f"gitexp://{self.repo.root.as_posix()}?run={info.run_id}",
                run_name=info.run_name,
            ),
            ml.RunData(
                metrics=[
                    ml.Metric(k, v, info.end_time or 0, 0) for k, v in run.data.metrics.items()
                ],
                params=[ml.Param(k, v) for k, v in run.data.params.items()],
                tags=[ml.RunTag(k, v) for k, v in tags.items()],
            ),
            ml.RunInputs(dataset_inputs=inputs),
        )

    def _experiment(self, exp: gx.Experiment) -> ml.Experiment:
        return ml.Experiment(
            experiment_id=to_mlflow_id(exp.experiment_id),
            name=exp.name,
            artifact_location=exp.artifact_location,
            lifecycle_stage="active",
            tags=[ml.ExperimentTag(k, v) for k, v in exp.tags.items()],
            creation_time=exp.creation_time,
            last_update_time=exp.last_update_time,
        )

    # --- experiments ----------------------------------------------------------------------

    def search_experiments(
        self,
        view_type: int = 1,
        max_results: int = 1000,
        filter_string: str | None = None,
        order_by: Any = None,
        page_token: Any = None,
    ) -> PagedList:
        found = self._call(
            fluent.search_experiments, view_type, max_results, filter_string, order_by
        )
        return PagedList([self._experiment(e) for e in found], None)

    def get_experiment(self, experiment_id: str) -> ml.Experiment:
        found = self._call(fluent.get_experiment, from_mlflow_id(str(experiment_id)))
        return self._experiment(found)

    def get_experiment_by_name(self, experiment_name: str) -> ml.Experiment | None:
        found = self._call(fluent.get_experiment_by_name, experiment_name)
        return self._experiment(found) if found else None

    # --- runs -------------------------------------------------------------------------------

    def get_run(self, run_id: str) -> ml.Run:
        return self._run(self._call(api.get_run, from_mlflow_id(run_id), str(self.repo.root)))

    def _search_runs(
        self,
        experiment_ids: Any,
        filter_string: str,
        run_view_type: int,
        max_results: int,
        order_by: Any,
        page_token: Any,
    ) -> tuple[list, None]:
        ids = [from_mlflow_id(str(i)) for i in experiment_ids or []]
        runs = self._call(
            api._search,
            self.repo,
            ids,
            filter_string,
            run_view_type,
            max_results,
            order_by,
            not ids,
            None,
        )
        return [self._run(r) for r in runs], None

    def get_metric_history(
        self, run_id: str, metric_key: str, max_results: int | None = None, page_token: Any = None
    ) -> PagedList:
        history = self._call(
            api.get_metric_history, from_mlflow_id(run_id), metric_key, str(self.repo.root)
        )
        metrics = [ml.Metric(m.key, m.value, m.timestamp, m.step) for m in history]
        return PagedList(metrics[:max_results] if max_results else metrics, None)

    def search_logged_models(self, *args: Any, **kwargs: Any) -> PagedList:
        return PagedList([], None)

    def search_datasets(self, *args: Any, **kwargs: Any) -> PagedList:
        return PagedList([], None)


def _refuse(*_args: Any, **_kwargs: Any) -> Any:
    raise _read_only()


# Writes through MLflow are refused: runs are recorded by gitexp's own API.
for _write in ("create_experiment", "create_run", "log_batch", "update_run_info", "delete_run",
               "set_tag", "delete_tag", "log_inputs", "log_metric", "log_param",
               "set_experiment_tag", "delete_experiment", "rename_experiment"):  # fmt: skip
    setattr(GitexpStore, _write, _refuse)


class GitexpArtifactRepository(ArtifactRepository):
    """A run's artifacts from its commit and DVC's cache; the URI is
    `gitexp:///path/to/repo?run=<run name>`."""

    def __init__(
        self, artifact_uri: str, tracking_uri: str | None = None, registry_uri: str | None = None
    ) -> None:
        super().__init__(artifact_uri)
        parsed = urlparse(artifact_uri)
        run = parse_qs(parsed.query).get("run")
        if not run:
            raise MlflowException(f"not a gitexp run artifact URI: {artifact_uri}")
        self.run_id = run[0]
        path = parsed.path
        # MLflow may append a sub-path to the repository path: the repository is the git
        # toplevel of the longest existing directory.
        probe = path
        while probe and not os.path.isdir(probe):
            probe = os.path.dirname(probe)
        self.repo = Repo.discover(probe or "/")
        self.prefix = os.path.relpath(path, self.repo.root) if path != str(self.repo.root) else ""
        self.prefix = "" if self.prefix == "." else self.prefix

    def _sub(self, path: str | None) -> str:
        return "/".join(p for p in (self.prefix, (path or "").strip("/")) if p)

    def list_artifacts(self, path: str | None = None) -> list[ml.FileInfo]:
        try:
            found = artifacts.list_artifacts(self.repo, self.run_id, self._sub(path) or None)
        except GitexpError as exc:
            raise _not_found(str(exc)) from None
        return [ml.FileInfo(f.path, f.is_dir, f.file_size) for f in found]

    def _download_file(self, remote_file_path: str, local_path: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                got = artifacts.download_artifacts(
                    self.repo, self.run_id, self._sub(remote_file_path), tmp
                )
            except GitexpError as exc:
                raise _not_found(str(exc)) from None
            shutil.copyfile(got, local_path)

    log_artifact = log_artifacts = delete_artifacts = _refuse
