"""`gitexp.models`, as `mlflow.models`: `infer_signature` and `ModelSignature`, which
`log_model` writes into the model's MLmodel file in MLflow's format."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

_TYPES = {"f": "double", "i": "long", "u": "long", "b": "boolean", "O": "string", "U": "string"}


def _schema(data: Any) -> list[dict[str, Any]] | None:
    if data is None:
        return None
    if hasattr(data, "dtypes") and hasattr(data, "columns"):  # a DataFrame
        return [
            {"type": _TYPES.get(dtype.kind, "string"), "name": str(col), "required": True}
            for col, dtype in data.dtypes.items()
        ]
    if hasattr(data, "dtype") and hasattr(data, "name") and hasattr(data, "to_frame"):  # Series
        return [{"type": _TYPES.get(data.dtype.kind, "string"), "required": True}]
    import numpy

    array = numpy.asarray(data)
    return [
        {
            "type": "tensor",
            "tensor-spec": {"dtype": str(array.dtype), "shape": [-1, *array.shape[1:]]},
        }
    ]


@dataclass(frozen=True)
class ModelSignature:
    inputs: list[dict[str, Any]] | None = None
    outputs: list[dict[str, Any]] | None = None
    params: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": json.dumps(self.inputs) if self.inputs is not None else None,
            "outputs": json.dumps(self.outputs) if self.outputs is not None else None,
            "params": json.dumps(self.params) if self.params is not None else None,
        }


def infer_signature(
    model_input: Any = None, model_output: Any = None, params: dict[str, Any] | None = None
) -> ModelSignature:
    """The input and output schema of a model from examples, in MLflow's format."""
    spec = [
        {"name": k, "type": _TYPES.get(type(v).__name__[0], "string"), "default": v}
        for k, v in (params or {}).items()
    ]
    return ModelSignature(_schema(model_input), _schema(model_output), spec or None)
