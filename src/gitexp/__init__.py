"""gitexp: Git-native experiment versioning. Every run is a commit on refs/runs/<name>.

The Python API (MLflow's fluent names) is loaded on first use, so `import gitexp` and the
command line stay fast:

    import gitexp
    with gitexp.start_run():
        gitexp.log_metric("loss", 0.3, step=1)
    gitexp.search_runs("loss < 0.5", order_by="metrics.loss")
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_TRACKING = [
    "ActiveRun",
    "active_run",
    "end_run",
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_figure",
    "log_image",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_text",
    "set_tag",
    "set_tags",
    "start_run",
]
_LAZY = {
    **dict.fromkeys(_TRACKING, "gitexp.tracking.fluent"),
    **dict.fromkeys(["search_runs", "get_run", "diff"], "gitexp.tracking.api"),
    "autolog": "gitexp.tracking.autolog",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gitexp' has no attribute {name!r}")
