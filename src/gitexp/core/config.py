"""gitexp's configuration, `gitexp.yaml` at the repository root, read into one typed object.

Every setting has a default, so no file is needed. `dvc.yaml` adds the params and metrics files
its stages declare, as DVC users expect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gitexp.core import dvcyaml, yamlio
from gitexp.core.metrics import DEFAULT_METRICS_FILE
from gitexp.core.params import DEFAULT_PARAMS_FILE
from gitexp.errors import UsageError

CONFIG_FILE = "gitexp.yaml"
DVC_YAML = "dvc.yaml"
RESERVED_DIR = ".gitexp"  # the run record's place inside a run commit


DEFAULT_MAX_FILE_BYTES = 10 * 1000 * 1000
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9}


@dataclass(frozen=True)
class Config:
    params_files: tuple[str, ...] = (DEFAULT_PARAMS_FILE,)
    metrics_files: tuple[str, ...] = (DEFAULT_METRICS_FILE,)
    outs: tuple[str, ...] = ()  # artifacts every run stores in DVC's cache
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES  # larger files stop a run's capture
    directions: dict[str, str] = field(default_factory=dict)  # metric -> 'min' or 'max'
    env: tuple[str, ...] = ()  # environment variables a run records (secret-looking never)


def parse_config(
    config: bytes | None,
    dvc_yaml: bytes | None,
    read: Callable[[str], bytes | None] = lambda _path: None,
) -> Config:
    # DVCLive's files (and gitexp's Python API, which writes DVCLive's layout) count too.
    params = [DEFAULT_PARAMS_FILE, "dvclive/params.yaml"]
    metrics = [DEFAULT_METRICS_FILE, "dvclive/metrics.json"]
    outs: list[str] = []
    max_bytes = DEFAULT_MAX_FILE_BYTES
    directions: dict[str, str] = {}
    env: list[str] = []
    if config is not None:
        doc = yamlio.load(config, CONFIG_FILE) or {}
        if not isinstance(doc, dict):
            raise UsageError(f"{CONFIG_FILE}:1:1: the configuration must be a mapping")
        params = _paths(doc.get("params", params), "params")
        metrics = _paths(doc.get("metrics", metrics), "metrics")
        outs = _paths(doc.get("outs", outs), "outs")
        max_bytes = parse_size(doc.get("max_file_size", max_bytes))
        env = _paths(doc.get("env", env), "env")
        directions = doc.get("direction") or {}
        if not isinstance(directions, dict) or not all(
            v in ("min", "max") for v in directions.values()
        ):
            raise UsageError(f"{CONFIG_FILE}: 'direction' maps metrics to min or max")
    if dvc_yaml is not None:
        pipeline = dvcyaml.parse(dvc_yaml, DVC_YAML, read)
        params += [p for p in pipeline.param_files() if p not in params]
        metrics += [m for m in pipeline.metric_files() if m not in metrics]
    return Config(
        params_files=tuple(params),
        metrics_files=tuple(metrics),
        outs=tuple(outs),
        max_file_bytes=max_bytes,
        directions={str(k): str(v) for k, v in directions.items()},
        env=tuple(env),
    )


def parse_size(value: Any) -> int:
    """10000000, '10MB', '1.5 GB' -> bytes."""
    text = str(value).strip().lower().replace(" ", "")
    number = text.rstrip("kmgb")
    unit = text[len(number) :]
    try:
        if unit not in _UNITS:
            raise ValueError
        return int(float(number) * _UNITS[unit])
    except ValueError:
        raise UsageError(
            f"{CONFIG_FILE}: max_file_size '{value}' is not a size such as 10MB"
        ) from None


def load_config(read: Callable[[str], bytes | None]) -> Config:
    """The configuration of a workspace or a revision, given a way to read its files."""
    return parse_config(read(CONFIG_FILE), read(DVC_YAML), read)


def _paths(value: Any, key: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{CONFIG_FILE}: '{key}' must be a list of file paths")
    return list(value)
