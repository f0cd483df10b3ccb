"""`gitexp.sklearn`, as `mlflow.sklearn`: log, save and load scikit-learn models, and
autologging. `import gitexp.sklearn` (or `import gitexp as mlflow; mlflow.sklearn...`)."""

from __future__ import annotations

from typing import Any

from gitexp.tracking.entities import ModelInfo

FLAVOR_NAME = "sklearn"


def log_model(
    sk_model: Any,
    artifact_path: str | None = None,
    *,
    name: str | None = None,
    registered_model_name: str | None = None,
    input_example: Any = None,
    signature: Any = None,
    serialization_format: str = "cloudpickle",
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    metadata: dict[str, Any] | None = None,
    **_ignored: Any,
) -> ModelInfo:
    """Saves the model as an artifact of the active run (stored by DVC); see
    gitexp.tracking.models."""
    from gitexp.tracking.models import log_model as log

    return log(
        sk_model,
        artifact_path,
        name=name,
        registered_model_name=registered_model_name,
        input_example=input_example,
        signature=signature,
        serialization_format=serialization_format,
        pip_requirements=pip_requirements,
        extra_pip_requirements=extra_pip_requirements,
        metadata_=metadata,
    )


def save_model(sk_model: Any, path: str, **kwargs: Any) -> None:
    from gitexp.tracking.models import save_model as save

    if "metadata" in kwargs:
        kwargs["metadata_"] = kwargs.pop("metadata")
    save(sk_model, path, **kwargs)


def load_model(model_uri: str, dst_path: str | None = None) -> Any:
    """The estimator at runs:/<run>/<path>, models:/<name>/<version>, models:/<name>@<alias>
    or a local folder."""
    from gitexp.tracking.models import load_model as load

    return load(model_uri, dst_path, flavor=FLAVOR_NAME)


def autolog(
    log_input_examples: bool = False,
    log_model_signatures: bool = True,
    log_models: bool = True,
    disable: bool = False,
    silent: bool = False,
    **_ignored: Any,
) -> None:
    """As mlflow.sklearn.autolog: every estimator's `fit` logs its params, training
    metrics and (with log_models) the fitted model; without an active run, `fit` gets a
    run of its own."""
    from gitexp.tracking.autolog import autolog as patch

    patch(disable=disable, log_models=log_models, own_runs=True)
