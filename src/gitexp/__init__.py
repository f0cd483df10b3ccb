"""gitexp: Git-native experiment versioning. Every run is a commit on refs/runs/<name>.

The Python API (MLflow's fluent names) is loaded on first use, so `import gitexp` and the
command line stay fast:

    import gitexp as mlflow          # MLflow's tracking code runs unchanged
    with mlflow.start_run(run_name="rf"):
        mlflow.log_metric("loss", 0.3, step=1)
    mlflow.search_runs(filter_string="metrics.loss < 0.5", order_by=["metrics.loss"])
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_TRACKING = [
    "ActiveRun",
    "active_run",
    "create_experiment",
    "delete_tag",
    "end_run",
    "get_artifact_uri",
    "get_experiment",
    "get_experiment_by_name",
    "last_active_run",
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_figure",
    "log_image",
    "log_input",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_table",
    "log_text",
    "search_experiments",
    "set_experiment",
    "set_tag",
    "set_tags",
    "start_run",
]
_LAZY = {
    **dict.fromkeys(_TRACKING, "gitexp.tracking.fluent"),
    **dict.fromkeys(
        ["search_runs", "get_run", "get_metric_history", "diff"], "gitexp.tracking.api"
    ),  # fmt: skip
    **dict.fromkeys(
        ["set_tracking_uri", "get_tracking_uri", "is_tracking_uri_set"], "gitexp.tracking.context"
    ),  # fmt: skip
    **dict.fromkeys(["register_model"], "gitexp.tracking.registry"),
    **dict.fromkeys(["MlflowClient"], "gitexp.tracking.client"),
    **dict.fromkeys(
        ["Run", "RunInfo", "RunData", "Experiment", "ViewType", "RunStatus"],
        "gitexp.tracking.entities",
    ),  # fmt: skip
    "autolog": "gitexp.tracking.autolog",
    "sweep": "gitexp.sweeps.runner",
}
_SUBMODULES = ("sklearn", "pyfunc", "models", "entities", "tracking")
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:  # `mlflow.sklearn.log_model` after `import gitexp as mlflow`
        return importlib.import_module(f"gitexp.{name}")
    raise AttributeError(f"module 'gitexp' has no attribute {name!r}")
