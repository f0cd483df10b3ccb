"""`MlflowClient` over a git repository: runs, experiments, artifacts and the model registry
(git tags in GTO's format) with MLflow's method names and return types."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gitexp.errors import UsageError
from gitexp.store.git import Repo
from gitexp.tracking import api, context, experiments, fluent, registry
from gitexp.tracking import artifacts as run_artifacts
from gitexp.tracking.entities import (
    Experiment,
    FileInfo,
    Metric,
    ModelVersion,
    RegisteredModel,
    Run,
    ViewType,
)


class MlflowClient:
    """`MlflowClient(tracking_uri)`: a repository path, `file:` or `gitexp:` URI (default:
    the tracking URI of the fluent API)."""

    def __init__(self, tracking_uri: str | None = None, registry_uri: str | None = None) -> None:
        del registry_uri  # the registry is the same repository's tags
        self._path = context.repo_path_of(tracking_uri) if tracking_uri else None

    @property
    def _repo(self) -> Repo:
        return Repo.discover(self._path or context.tracking_path())

    # --- runs -----------------------------------------------------------------------------

    def get_run(self, run_id: str) -> Run:
        return api.get_run(run_id, path=str(self._repo.root))

    def search_runs(
        self,
        experiment_ids: Sequence[str] | str | None = None,
        filter_string: str = "",
        run_view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> list[Run]:
        del page_token
        repo = self._repo
        ids = experiment_ids
        if ids is None:
            ids = [e.experiment_id for e in self.search_experiments()]
        return api._search(
            repo, ids, filter_string, run_view_type, max_results, order_by, False, None
        )

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        return api.get_metric_history(run_id, key, path=str(self._repo.root))

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[FileInfo]:
        return run_artifacts.list_artifacts(self._repo, run_id, path)

    def download_artifacts(self, run_id: str, path: str, dst_path: str | None = None) -> str:
        return run_artifacts.download_artifacts(self._repo, run_id, path, dst_path)

    # Logging to a run by id: runs started in this process (a recorded run is a commit).
    def create_run(
        self,
        experiment_id: str,
        start_time: int | None = None,
        tags: dict[str, Any] | None = None,
        run_name: str | None = None,
    ) -> Run | fluent.ActiveRun:
        del start_time
        run = fluent.start_run(
            experiment_id=experiment_id,
            run_name=run_name,
            tags=tags,
            nested=fluent.active_run() is not None,
        )
        return run

    def log_param(self, run_id: str, key: str, value: Any, synchronous: bool | None = None) -> Any:
        return fluent._run_for(run_id).log_param(key, value)

    def log_metric(
        self,
        run_id: str,
        key: str,
        value: float,
        timestamp: int | None = None,
        step: int | None = None,
        synchronous: bool | None = None,
    ) -> None:
        fluent._run_for(run_id).log_metric(key, value, step if step is not None else 0, timestamp)

    def set_tag(self, run_id: str, key: str, value: Any, synchronous: bool | None = None) -> None:
        """On an active run, a tag of the run; on a recorded one, a git note (`gitexp tag`)."""
        if self._active(run_id):
            fluent._run_for(run_id).set_tag(key, value)
        else:
            from gitexp.workflows.manage import tag

            tag(self._repo, run_id, {key: str(value)}, [])

    def delete_tag(self, run_id: str, key: str) -> None:
        if self._active(run_id):
            fluent._run_for(run_id).delete_tag(key)
        else:
            from gitexp.workflows.manage import tag

            tag(self._repo, run_id, {}, [key])

    @staticmethod
    def _active(run_id: str) -> bool:
        return any(run.run_id == run_id for run in fluent._active)

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Any] = (),
        params: Sequence[Any] = (),
        tags: Sequence[Any] = (),
        synchronous: bool | None = None,
    ) -> None:
        run = fluent._run_for(run_id)
        for metric in metrics:
            run.log_metric(metric.key, metric.value, metric.step, metric.timestamp)
        run.log_params({p.key: p.value for p in params})
        run.set_tags({t.key: t.value for t in tags})

    def log_artifact(self, run_id: str, local_path: str, artifact_path: str | None = None) -> None:
        fluent._run_for(run_id).log_artifact(local_path, artifact_path)

    def log_artifacts(self, run_id: str, local_dir: str, artifact_path: str | None = None) -> None:
        fluent._run_for(run_id).log_artifacts(local_dir, artifact_path)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        fluent._run_for(run_id).log_text(text, artifact_file)

    def log_dict(self, run_id: str, dictionary: Any, artifact_file: str) -> None:
        fluent._run_for(run_id).log_dict(dictionary, artifact_file)

    def set_terminated(
        self, run_id: str, status: str | None = None, end_time: int | None = None
    ) -> None:
        fluent._run_for(run_id).end(status or "FINISHED")

    def update_run(self, run_id: str, status: str | None = None, name: str | None = None) -> None:
        if status and status != "RUNNING":
            self.set_terminated(run_id, status)

    def delete_run(self, run_id: str) -> None:
        from gitexp.store.records import remove_runs

        remove_runs(self._repo, [run_id])

    # --- experiments ----------------------------------------------------------------------

    def _run_names(self) -> list[str]:
        from gitexp.store.records import run_names

        return run_names(self._repo)[0]

    def get_experiment(self, experiment_id: str) -> Experiment:
        found = experiments.find(
            self._repo, experiment_id=str(experiment_id), run_names=self._run_names()
        )
        if found is None:
            raise UsageError(f"no experiment with id '{experiment_id}'")
        return found

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        return experiments.find(self._repo, name=name, run_names=self._run_names())

    def search_experiments(
        self,
        view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int | None = None,
        filter_string: str | None = None,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> list[Experiment]:
        del page_token
        if self._path is None:
            return fluent.search_experiments(view_type, max_results, filter_string, order_by)
        previous = context._state["uri"]
        context._state["uri"] = self._path
        try:
            return fluent.search_experiments(view_type, max_results, filter_string, order_by)
        finally:
            context._state["uri"] = previous

    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: dict[str, Any] | None = None
    ) -> str:
        tag_map = {str(k): str(v) for k, v in (tags or {}).items()}
        return experiments.create(
            self._repo, name, tag_map, artifact_location, self._run_names()
        ).experiment_id

    def set_experiment_tag(self, experiment_id: str, key: str, value: Any) -> None:
        self.get_experiment(experiment_id)
        experiments.set_tag(self._repo, str(experiment_id), key, str(value))

    # --- the model registry ---------------------------------------------------------------

    def create_registered_model(
        self, name: str, tags: dict[str, Any] | None = None, description: str | None = None
    ) -> RegisteredModel:
        """In GTO's registry a model exists once a version is registered; this checks the
        name and returns the model (empty until then)."""
        registry.check_name(name)
        return registry.model_entity(self._repo, registry.load(self._repo, name))

    def get_registered_model(self, name: str) -> RegisteredModel:
        model = registry.load(self._repo, name)
        if not model.events:
            raise UsageError(f"no registered model named '{name}'")
        return registry.model_entity(self._repo, model)

    def search_registered_models(
        self,
        filter_string: str | None = None,
        max_results: int = 100,
        order_by: Any = None,
        page_token: str | None = None,
    ) -> list[RegisteredModel]:
        from gitexp.tracking import filters

        clauses = filters.parse(filter_string)
        repo = self._repo
        found = [registry.model_entity(repo, m) for m in registry.load_all(repo)]
        found = [
            m
            for m in found
            if filters.matches(clauses, lambda k, m=m: m.name if k.name == "name" else None)
        ]
        return found[:max_results]

    def create_model_version(
        self,
        name: str,
        source: str,
        run_id: str | None = None,
        tags: dict[str, Any] | None = None,
        run_link: str | None = None,
        description: str | None = None,
        await_creation_for: int = 0,
    ) -> ModelVersion:
        uri = source if source.startswith("runs:") or run_id is None else f"runs:/{run_id}"
        previous = context._state["uri"]
        if self._path is not None:
            context._state["uri"] = self._path
        try:
            return registry.register_model(uri, name)
        finally:
            context._state["uri"] = previous

    def _versions(self, name: str) -> tuple[registry.Model, list[ModelVersion]]:
        repo = self._repo
        model = registry.load(repo, name)
        runs = registry._runs_by_commit(repo)
        return model, [registry.version_entity(repo, model, v, runs) for v in model.numbered()]

    def get_model_version(self, name: str, version: str | int) -> ModelVersion:
        repo = self._repo
        _, found = registry.resolve(repo, name, str(version))
        model = registry.load(repo, name)  # the whole history: MLflow's number, the aliases
        found = model.find(commit=found.commit) or found
        return registry.version_entity(repo, model, found, registry._runs_by_commit(repo))

    def get_latest_versions(self, name: str, stages: list[str] | None = None) -> list[ModelVersion]:
        repo = self._repo
        model = registry.load(repo, name)
        runs = registry._runs_by_commit(repo)
        if stages:
            held = model.stages()
            return [
                registry.version_entity(repo, model, held[s], runs) for s in stages if s in held
            ]
        latest = model.latest()
        return [registry.version_entity(repo, model, latest, runs)] if latest else []

    def search_model_versions(
        self,
        filter_string: str | None = None,
        max_results: int = 10_000,
        order_by: Any = None,
        page_token: str | None = None,
    ) -> list[ModelVersion]:
        from gitexp.tracking import filters

        clauses = filters.parse(filter_string)
        repo = self._repo
        runs = registry._runs_by_commit(repo)
        found = [
            registry.version_entity(repo, model, v, runs)
            for model in registry.load_all(repo)
            for v in model.numbered()
            if v.active
        ]

        def lookup(v: ModelVersion, key: filters.Key) -> Any:
            return {
                "name": v.name,
                "run_id": v.run_id,
                "version": v.version,
                "source": v.source,
                "version_number": v.version,
            }.get(key.name)

        found = [v for v in found if filters.matches(clauses, lambda k, v=v: lookup(v, k))]
        return found[:max_results]

    def set_registered_model_alias(self, name: str, alias: str, version: str | int) -> None:
        """The alias is a GTO stage; it moves: the version that held it is unassigned."""
        repo = self._repo
        _, found = registry.resolve(repo, name, str(version))
        registry.assign(repo, name, alias, found, exclusive=True)

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        registry.unassign(self._repo, name, alias)

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        return self.get_model_version(name, "@" + alias)

    def transition_model_version_stage(
        self, name: str, version: str | int, stage: str, archive_existing_versions: bool = False
    ) -> ModelVersion:
        """MLflow's legacy stages as GTO stages (lower case: 'Production' -> 'production')."""
        repo = self._repo
        _, found = registry.resolve(repo, name, str(version))
        registry.assign(repo, name, stage.lower(), found, exclusive=archive_existing_versions)
        return self.get_model_version(name, version)

    def delete_model_version(self, name: str, version: str | int) -> None:
        repo = self._repo
        _, found = registry.resolve(repo, name, str(version))
        registry.deregister(repo, name, found.version)

    def get_model_version_download_uri(self, name: str, version: str | int) -> str:
        return f"models:/{name}/{version}"
