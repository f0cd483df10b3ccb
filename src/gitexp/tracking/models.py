"""Models as run artifacts: `log_model` saves a folder in MLflow's layout (the pickled model,
an `MLmodel` descriptor, the Python version and requirements) under the run's artifacts,
which DVC stores; `load_model` brings it back from `runs:/<run>/<path>`,
`models:/<name>/<version>`, `models:/<name>@<alias>` or a local folder.

The `MLmodel` file names MLflow's loader (`mlflow.sklearn`), so MLflow can load a model that
gitexp saved, and gitexp loads MLflow's sklearn models.
"""

from __future__ import annotations

import json
import platform
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from gitexp.errors import UsageError
from gitexp.tracking.entities import ModelInfo

MLMODEL = "MLmodel"
PICKLE = "model.pkl"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def default_requirements(flavor_dists: Sequence[str]) -> list[str]:
    found = []
    for dist in ("cloudpickle", *flavor_dists):
        version = _version(dist)
        if version:
            found.append(f"{dist}=={version}")
    return found


def _signature_dict(signature: Any) -> dict[str, Any] | None:
    if signature is None:
        return None
    if hasattr(signature, "to_dict"):
        return signature.to_dict()
    if isinstance(signature, dict):
        return signature
    raise UsageError("signature must be an MLflow ModelSignature or a dict")


def _example_json(example: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """An input example as MLflow saves it, and the MLmodel's description of it."""
    if hasattr(example, "to_dict") and hasattr(example, "columns"):  # a DataFrame
        data = json.loads(example.to_json(orient="split", index=False))
        return data, {
            "artifact_path": "input_example.json",
            "type": "dataframe",
            "pandas_orient": "split",
            "serving_input_path": "serving_input_example.json",
        }
    if hasattr(example, "tolist"):  # numpy
        return {"inputs": example.tolist()}, {
            "artifact_path": "input_example.json",
            "type": "ndarray",
            "format": "tf-serving",
        }
    return {"inputs": example}, {"artifact_path": "input_example.json", "type": "json_object"}


def save_model(
    model: Any,
    path: str | Path,
    *,
    flavor: str = "sklearn",
    loader_module: str = "mlflow.sklearn",
    flavor_version: tuple[str, str] | None = ("sklearn_version", "scikit-learn"),
    serialization_format: str = "cloudpickle",
    input_example: Any = None,
    signature: Any = None,
    pip_requirements: Sequence[str] | None = None,
    extra_pip_requirements: Sequence[str] | None = None,
    metadata_: dict[str, Any] | None = None,
    run_id: str | None = None,
    artifact_path: str | None = None,
) -> dict[str, Any]:
    """Writes the model folder; returns the MLmodel content."""
    if serialization_format not in ("cloudpickle", "pickle"):
        raise UsageError("serialization_format must be 'cloudpickle' or 'pickle'")
    try:
        import cloudpickle as pickler  # what MLflow uses; gitexp falls back to pickle
    except ImportError:
        import pickle as pickler

        serialization_format = "pickle"
    target = Path(path)
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    with open(target / PICKLE, "wb") as fh:
        pickler.dump(model, fh)
    python = platform.python_version()
    requirements = list(
        pip_requirements or default_requirements([flavor_version[1]] if flavor_version else [])
    )
    requirements += list(extra_pip_requirements or [])
    (target / "requirements.txt").write_text("".join(f"{r}\n" for r in requirements))
    import yaml

    (target / "python_env.yaml").write_text(
        yaml.safe_dump(
            {
                "python": python,
                "build_dependencies": [f"pip=={_version('pip') or ''}".rstrip("=")],
                "dependencies": ["-r requirements.txt"],
            },
            sort_keys=False,
        )
    )
    (target / "conda.yaml").write_text(
        yaml.safe_dump(
            {
                "channels": ["conda-forge"],
                "dependencies": [f"python={python}", "pip", {"pip": requirements}],
                "name": "mlflow-env",
            },
            sort_keys=False,
        )
    )
    flavor_conf: dict[str, Any] = {
        "pickled_model": PICKLE,
        "serialization_format": serialization_format,
        "code": None,
    }
    if flavor_version and _version(flavor_version[1]):
        flavor_conf[flavor_version[0]] = _version(flavor_version[1])
    mlmodel: dict[str, Any] = {
        "artifact_path": artifact_path or target.name,
        "flavors": {
            "python_function": {
                "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
                "loader_module": loader_module,
                "model_path": PICKLE,
                "predict_fn": "predict",
                "python_version": python,
            },
            flavor: flavor_conf,
        },
        "model_uuid": uuid.uuid4().hex,
        "run_id": run_id,
        "utc_time_created": time.strftime("%Y-%m-%d %H:%M:%S.000000", time.gmtime()),
        "gitexp_version": _version("gitexp"),
    }
    if input_example is not None:
        data, info = _example_json(input_example)
        (target / "input_example.json").write_text(json.dumps(data, default=str))
        mlmodel["saved_input_example_info"] = info
    sig = _signature_dict(signature)
    if sig is not None:
        mlmodel["signature"] = sig
    if metadata_:
        mlmodel["metadata"] = metadata_
    (target / MLMODEL).write_text(yaml.safe_dump(mlmodel, sort_keys=False))
    return mlmodel


def log_model(
    model: Any,
    artifact_path: str | None = None,
    *,
    name: str | None = None,
    registered_model_name: str | None = None,
    flavor: str = "sklearn",
    **kwargs: Any,
) -> ModelInfo:
    """Saves the model under the active run's artifacts (started if none, as MLflow does).
    `registered_model_name` registers it once the run is recorded (a version is a tag on
    the run's commit, which exists only then)."""
    from gitexp.tracking import fluent

    artifact_path = (name or artifact_path or "model").strip("/")
    run = fluent._current()
    target = run._artifact_dir(None) / artifact_path
    mlmodel = save_model(
        model, target, flavor=flavor, run_id=run.run_id, artifact_path=artifact_path, **kwargs
    )
    run._add_artifact(target)
    run.models[artifact_path] = {
        "flavors": sorted(mlmodel["flavors"]),
        "registered_model_name": registered_model_name,
        "utc_time_created": mlmodel["utc_time_created"],
        "model_uuid": mlmodel["model_uuid"],
    }
    if registered_model_name:
        run.after_record.append(
            lambda: _register_logged(run.run_id, artifact_path, registered_model_name)
        )
    return ModelInfo(
        artifact_path=artifact_path,
        model_uri=f"runs:/{run.run_id}/{artifact_path}",
        run_id=run.run_id,
        flavors=mlmodel["flavors"],
        utc_time_created=mlmodel["utc_time_created"],
        signature=kwargs.get("signature"),
    )


def _register_logged(run_id: str, artifact_path: str, model_name: str) -> None:
    from gitexp.tracking.registry import register_model

    version = register_model(f"runs:/{run_id}/{artifact_path}", model_name)
    print(
        f"Registered model '{model_name}' version {version.version} "
        f"(git tag {model_name}@{version.semver})"
    )


# --- loading -------------------------------------------------------------------------------


@dataclass
class LocalModel:
    """A model folder on disk and its MLmodel content."""

    path: Path
    mlmodel: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    cleanup: Path | None = None


def fetch(model_uri: str, dst_path: str | None = None) -> LocalModel:
    """The model folder a URI names, on local disk."""
    from gitexp.store.git import Repo
    from gitexp.tracking import artifacts, context

    if not isinstance(model_uri, str):
        model_uri = str(model_uri)
    local = Path(model_uri[len("file://") :] if model_uri.startswith("file://") else model_uri)
    if "://" not in model_uri and ":/" not in model_uri and local.exists():
        return LocalModel(local, _read_mlmodel(local))
    repo = Repo.discover(context.tracking_path())
    if model_uri.startswith("runs:"):
        run_id, path = artifacts.split_runs_uri(repo, model_uri)
        located = artifacts.locate(repo, run_id, path or "model")
    elif model_uri.startswith("models:"):
        from gitexp.tracking.registry import locate_model

        located = locate_model(repo, model_uri)
    else:
        raise UsageError(
            f"cannot load '{model_uri}': use runs:/<run_id>/<path>, models:/<name>/<version>, "
            "models:/<name>@<alias> or a local folder"
        )
    cleanup = None
    if dst_path is None:
        cleanup = Path(tempfile.mkdtemp(prefix="gitexp-model-"))
        dest = cleanup
    else:
        dest = Path(dst_path)
        dest.mkdir(parents=True, exist_ok=True)
    path = artifacts.download(repo, located, dest)
    return LocalModel(path, _read_mlmodel(path), located.run_id, cleanup)


def _read_mlmodel(path: Path) -> dict[str, Any]:
    from gitexp.core import yamlio

    file = path / MLMODEL if path.is_dir() else None
    if file is None or not file.is_file():
        return {}
    data = yamlio.load(file.read_bytes(), str(file))
    return data if isinstance(data, dict) else {}


def load_pickled(local: LocalModel, flavor: str = "sklearn") -> Any:
    """The Python object of a model folder (or of a single pickle file)."""
    import pickle

    if local.path.is_file():
        pickled = local.path
    else:
        conf = (local.mlmodel.get("flavors") or {}).get(flavor) or {}
        if not conf:
            conf = (local.mlmodel.get("flavors") or {}).get("python_function") or {}
            conf = {"pickled_model": conf.get("model_path", PICKLE)}
        pickled = local.path / str(conf.get("pickled_model") or PICKLE)
        if not pickled.is_file():
            raise UsageError(f"the model at {local.path} has no {flavor} flavor ({pickled.name})")
    if pickled.suffix == ".joblib":
        import joblib

        return joblib.load(pickled)
    with open(pickled, "rb") as fh:
        # A model is code: load only models from runs you trust, as with MLflow.
        return pickle.load(fh)  # noqa: S301


def load_model(model_uri: str, dst_path: str | None = None, flavor: str = "sklearn") -> Any:
    local = fetch(model_uri, dst_path)
    try:
        return load_pickled(local, flavor)
    finally:
        if local.cleanup is not None:
            shutil.rmtree(local.cleanup, ignore_errors=True)


class PyFuncModel:
    """MLflow's generic model: `predict(data)` whatever the flavor."""

    def __init__(self, model: Any, mlmodel: dict[str, Any], run_id: str | None) -> None:
        self._model = model
        self.metadata = _Metadata(mlmodel, run_id)

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        del params
        conf = self.metadata.flavors.get("python_function") or {}
        method = getattr(self._model, str(conf.get("predict_fn") or "predict"))
        return method(data)

    def get_raw_model(self) -> Any:
        return self._model

    def unwrap_python_model(self) -> Any:
        return self._model

    @property
    def loader_module(self) -> str | None:
        return (self.metadata.flavors.get("python_function") or {}).get("loader_module")


@dataclass
class _Metadata:
    mlmodel: dict[str, Any]
    run_id: str | None

    @property
    def flavors(self) -> dict[str, Any]:
        return self.mlmodel.get("flavors") or {}

    @property
    def artifact_path(self) -> str | None:
        return self.mlmodel.get("artifact_path")

    @property
    def signature(self) -> Any:
        return self.mlmodel.get("signature")

    def get_input_schema(self) -> Any:
        return (self.signature or {}).get("inputs")


def load_pyfunc(model_uri: str, dst_path: str | None = None) -> PyFuncModel:
    local = fetch(model_uri, dst_path)
    try:
        flavors = local.mlmodel.get("flavors") or {}
        flavor = next((f for f in flavors if f != "python_function"), "sklearn")
        model = load_pickled(local, flavor)
    finally:
        if local.cleanup is not None:
            shutil.rmtree(local.cleanup, ignore_errors=True)
    return PyFuncModel(model, local.mlmodel, local.run_id or local.mlmodel.get("run_id"))
