"""MLflow's entities over gitexp's runs: `Run` with `.info` and `.data`, `Experiment`,
`Metric`, `ModelVersion`... Plain frozen records, built by the readers in this package.

Field names follow MLflow's, so code that reads `run.info.run_id` or `run.data.metrics` runs
unchanged. Times are milliseconds since the epoch, as in MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# gitexp's statuses in MLflow's words, and back.
STATUS_TO_MLFLOW = {
    "success": "FINISHED",
    "failed": "FAILED",
    "interrupted": "KILLED",
    "saved": "FINISHED",
    "running": "RUNNING",
}
MLFLOW_TO_STATUS = {"FINISHED": "success", "FAILED": "failed", "KILLED": "interrupted"}


class ViewType:
    """MLflow's run and experiment view types; gitexp keeps no deleted runs."""

    ACTIVE_ONLY = 1
    DELETED_ONLY = 2
    ALL = 3


class RunStatus:
    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"


@dataclass(frozen=True)
class RunInfo:
    run_id: str  # the run's name: refs/runs/<run_id>
    run_name: str
    experiment_id: str
    user_id: str
    status: str
    start_time: int | None
    end_time: int | None
    artifact_uri: str
    lifecycle_stage: str = "active"

    @property
    def run_uuid(self) -> str:
        return self.run_id


@dataclass(frozen=True)
class RunData:
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Dataset:
    name: str
    digest: str
    source_type: str
    source: str
    schema: str | None = None
    profile: str | None = None


@dataclass(frozen=True)
class DatasetInput:
    dataset: Dataset
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunInputs:
    dataset_inputs: list[DatasetInput] = field(default_factory=list)


@dataclass(frozen=True)
class Run:
    """A recorded run as MLflow shows it, plus gitexp's own view of it: the commit (`rev`),
    the run record, and the metric histories."""

    info: RunInfo
    data: RunData
    inputs: RunInputs = field(default_factory=RunInputs)
    rev: str | None = None
    record: dict[str, Any] = field(default_factory=dict)
    root: str | None = None  # the repository the run is in

    @property
    def commit(self) -> Any:
        """The run's commit as a GitPython `git.Commit` (loaded on first use): its tree,
        parents, message and diffs, for code that works with git objects directly."""
        from gitexp.store.git import Repo

        if self.rev is None or self.root is None:
            raise AttributeError("this run has no commit")
        return Repo.discover(self.root).gitpython_commit(self.rev)

    def to_dictionary(self) -> dict[str, Any]:
        return {
            "info": dict(self.info.__dict__),
            "data": {
                "metrics": dict(self.data.metrics),
                "params": dict(self.data.params),
                "tags": dict(self.data.tags),
            },
        }


@dataclass(frozen=True)
class Metric:
    key: str
    value: float
    timestamp: int
    step: int


@dataclass(frozen=True)
class Param:
    key: str
    value: str


@dataclass(frozen=True)
class RunTag:
    key: str
    value: str


@dataclass(frozen=True)
class FileInfo:
    path: str
    is_dir: bool
    file_size: int | None


@dataclass(frozen=True)
class Experiment:
    experiment_id: str  # the run-name group: runs are refs/runs/<experiment_id>/<run>
    name: str
    artifact_location: str
    lifecycle_stage: str = "active"
    tags: dict[str, str] = field(default_factory=dict)
    creation_time: int | None = None
    last_update_time: int | None = None


@dataclass(frozen=True)
class ModelVersion:
    """A registered version: a git tag `<name>@v<semver>` on the run's commit (GTO's format).
    `version` is MLflow's integer (the n-th registered version), as a string like MLflow's."""

    name: str
    version: str
    semver: str
    creation_timestamp: int
    last_updated_timestamp: int
    source: str
    run_id: str | None
    commit: str
    status: str = "READY"
    current_stage: str = "None"
    aliases: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""
    user_id: str = ""


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    creation_timestamp: int
    last_updated_timestamp: int
    latest_versions: list[ModelVersion] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    deprecated: bool = False


@dataclass(frozen=True)
class ModelInfo:
    """What `log_model` returns, as MLflow's ModelInfo."""

    artifact_path: str
    model_uri: str
    run_id: str
    flavors: dict[str, Any]
    utc_time_created: str
    signature: Any = None
    registered_model_version: str | None = None

    @property
    def name(self) -> str:
        return self.artifact_path
