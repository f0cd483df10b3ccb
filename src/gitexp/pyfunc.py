"""`gitexp.pyfunc`, as `mlflow.pyfunc`: load any logged model as a generic one with
`predict`."""

from __future__ import annotations

from typing import Any

from gitexp.tracking.models import PyFuncModel

__all__ = ["PyFuncModel", "load_model"]


def load_model(model_uri: str, dst_path: str | None = None, **_ignored: Any) -> PyFuncModel:
    """A model from runs:/<run>/<path>, models:/<name>/<version>, models:/<name>@<alias> or
    a local folder; `.predict(data)` calls the model's own predict."""
    from gitexp.tracking.models import load_pyfunc

    return load_pyfunc(model_uri, dst_path)
