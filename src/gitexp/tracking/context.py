"""Where the Python API reads and records runs: the tracking URI (a repository) and the
current experiment, as MLflow's `set_tracking_uri` and `set_experiment` set them."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from gitexp.errors import UsageError

_state: dict[str, str | None] = {"uri": None, "experiment_id": None}


def repo_path_of(uri: str | os.PathLike[str]) -> str:
    """The repository a tracking URI names: a path, `file:` or `gitexp:` URI. A server URI
    is refused: gitexp keeps runs in git, not behind a tracking server."""
    text = os.fspath(uri)
    parsed = urlparse(text)
    if parsed.scheme in ("", "file", "gitexp") or (len(parsed.scheme) == 1 and os.name == "nt"):
        if parsed.scheme in ("file", "gitexp"):
            path = unquote(parsed.path) or "."
            if parsed.netloc and parsed.netloc not in ("localhost",):
                path = f"/{parsed.netloc}{path}" if parsed.scheme == "gitexp" else path
        else:
            path = text
        return str(Path(path).expanduser())
    raise UsageError(
        f"tracking URI '{text}' names a server; gitexp stores runs in a git repository, so "
        "the URI is a path or file: URI of one (e.g. set_tracking_uri('.'))"
    )


def set_tracking_uri(uri: str | os.PathLike[str]) -> None:
    repo_path_of(uri)  # refuse a server URI now, not at the first log call
    _state["uri"] = os.fspath(uri)


def get_tracking_uri() -> str:
    return _state["uri"] or Path(tracking_path()).resolve().as_uri()


def is_tracking_uri_set() -> bool:
    return _state["uri"] is not None


def tracking_path() -> str:
    """The repository directory: the tracking URI's, else MLFLOW_TRACKING_URI when it is a
    path, else the current directory."""
    if _state["uri"] is not None:
        return repo_path_of(_state["uri"])
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return repo_path_of(env)
    return "."


def current_experiment_id() -> str | None:
    return _state["experiment_id"]


def set_current_experiment_id(experiment_id: str | None) -> None:
    _state["experiment_id"] = experiment_id
