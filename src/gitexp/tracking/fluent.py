"""Logging from training code, MLflow's fluent API with git commits for runs.

    import gitexp
    with gitexp.start_run(params={"lr": 0.1}) as run:
        for epoch in range(10):
            gitexp.log_metric("loss", loss, step=epoch)

Files are written in DVCLive's layout, under `dvclive/` by default: `metrics.json` (the latest
value of each metric), `plots/metrics/<key>.tsv` (one `step<TAB>value` row per step), and
`params.yaml`. Writes are buffered and flushed every few seconds and at the end, so a killed
process keeps what was logged before the last flush.

Under `gitexp run` the run joins the outer one (that run commits); otherwise the end of the
`with` block records the run exactly as `gitexp run` does.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gitexp.errors import GitexpError, UsageError

DEFAULT_DIR = "dvclive"
FLUSH_SECONDS = 2.0
_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/ ]*$")
_STATUS = {"FINISHED": "success", "FAILED": "failed", "KILLED": "interrupted"}
_active: list[ActiveRun] = []
_lock = threading.RLock()


def _check_key(key: Any, what: str) -> str:
    if not isinstance(key, str) or not _KEY.match(key) or ".." in key or key.endswith("/"):
        raise UsageError(
            f"invalid {what} name {key!r}: use letters, digits, '_', '-', '.', '/' and spaces"
        )
    return key


def _check_metric(key: str, value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            import numpy  # noqa: F401 - only to accept numpy scalars

            if hasattr(value, "item") and not hasattr(value, "__len__"):
                value = value.item()
        except ImportError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"metric '{key}' must be a number, not {type(value).__name__}")
    return value


class ActiveRun:
    """One run being logged. Use it as a context manager (`with gitexp.start_run()`)."""

    def __init__(
        self,
        name: str | None,
        params: Mapping[str, Any] | None,
        tags: Mapping[str, str] | None,
        experiment: str | None,
        directory: str,
        parent: ActiveRun | None,
    ) -> None:
        self.joined = os.environ.get("GITEXP_RUN_NAME") if parent is None else None
        if experiment:
            _check_key(experiment, "experiment")
        self.name = self.joined or (f"{experiment}/{name}" if experiment and name else name)
        self.experiment = experiment
        self.parent = parent
        self.dir = Path(directory)
        self.started = time.time()
        self.params: dict[str, Any] = {}
        self.tags: dict[str, str] = {}
        self.metrics: dict[str, Any] = {}
        self._rows: dict[str, list[str]] = {}
        self._dirty = False
        self._last_flush = time.monotonic()
        self.artifacts: list[str] = []
        self.status: str | None = None
        self.error: str | None = None
        self.commit: str | None = None
        self._prepare_directory()
        if params:
            self.log_params(params)
        if tags:
            self.set_tags(tags)

    def _prepare_directory(self) -> None:
        """A fresh run starts from empty files; a run joining `gitexp run` too (the command
        is what that run records)."""
        for path in (self.dir / "metrics.json", self.dir / "params.yaml"):
            path.unlink(missing_ok=True)
        shutil.rmtree(self.dir / "plots" / "metrics", ignore_errors=True)

    # --- logging --------------------------------------------------------------------------

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        with _lock:
            for key, value in params.items():
                self.params[_check_key(key, "param")] = value
            self._write_params()

    def log_metric(self, key: str, value: Any, step: int | None = None) -> None:
        _check_key(key, "metric")
        value = _check_metric(key, value)
        with _lock:
            self.metrics[key] = value
            if step is not None:
                self._rows.setdefault(key, []).append(f"{int(step)}\t{value!r}\n")
            self._dirty = True
            if time.monotonic() - self._last_flush > FLUSH_SECONDS:
                self.flush()

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        for key, value in metrics.items():
            self.log_metric(key, value, step)

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        with _lock:
            for key, value in tags.items():
                self.tags[_check_key(key, "tag")] = str(value)
            self._write_manifest()

    def _write_manifest(self) -> None:
        """Inside `gitexp run`, tags and artifacts reach the outer run through a file it
        names in GITEXP_RUN_MANIFEST."""
        manifest = os.environ.get("GITEXP_RUN_MANIFEST") if self.joined else None
        if manifest:
            _write_json(Path(manifest), {"tags": self.tags, "artifacts": self.artifacts})

    def log_artifact(self, path: str | os.PathLike[str]) -> None:
        """A file or folder the run keeps: small text files in git, binary or large ones
        stored by DVC (their pointer files in the run)."""
        if not Path(path).exists():
            raise UsageError(f"artifact '{path}' does not exist")
        with _lock:
            self.artifacts.append(os.path.abspath(path))
            self._write_manifest()

    def log_artifacts(self, directory: str | os.PathLike[str]) -> None:
        self.log_artifact(directory)

    def log_text(self, text: str, artifact_file: str) -> None:
        path = self.dir / "artifacts" / _check_key(artifact_file, "artifact")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        self.log_artifact(path)

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        if artifact_file.endswith((".yaml", ".yml")):
            import yaml

            self.log_text(yaml.safe_dump(obj, sort_keys=False), artifact_file)
        else:
            self.log_text(json.dumps(obj, indent=2) + "\n", artifact_file)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        path = self.dir / "artifacts" / _check_key(artifact_file, "artifact")
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path)
        self.log_artifact(path)

    def log_image(self, image: Any, artifact_file: str) -> None:
        path = self.dir / "artifacts" / _check_key(artifact_file, "artifact")
        path.parent.mkdir(parents=True, exist_ok=True)
        if hasattr(image, "save"):  # a PIL image
            image.save(path)
        else:
            import matplotlib.image

            matplotlib.image.imsave(path, image)
        self.log_artifact(path)

    # --- files ------------------------------------------------------------------------------

    def flush(self) -> None:
        """Writes what was logged: history rows appended, the summary replaced atomically."""
        with _lock:
            for key, rows in self._rows.items():
                path = self.dir / "plots" / "metrics" / f"{key}.tsv"
                path.parent.mkdir(parents=True, exist_ok=True)
                new = not path.exists()
                with open(path, "a") as fh:
                    if new:
                        fh.write(f"step\t{key}\n")
                    fh.writelines(rows)
            self._rows = {}
            if self._dirty or not (self.dir / "metrics.json").exists():
                _write_json(self.dir / "metrics.json", _nested(self.metrics))
            self._dirty = False
            self._last_flush = time.monotonic()

    def _write_params(self) -> None:
        import yaml

        self.dir.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(_nested(self.params), sort_keys=False, allow_unicode=True)
        _replace(self.dir / "params.yaml", text)

    # --- ending -----------------------------------------------------------------------------

    def end(self, status: str = "FINISHED") -> None:
        if self.status is not None:
            return
        self.status = _STATUS.get(status.upper(), status)
        self.flush()
        with _lock:
            if self in _active:
                _active.remove(self)
        if not self.joined:
            self.commit = _record(self)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.end("FINISHED")
            return
        self.error = "".join(traceback.format_exception(exc_type, exc, tb))
        self.end("KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED")


def _nested(flat: Mapping[str, Any]) -> dict[str, Any]:
    """{'a.b': 1} -> {'a': {'b': 1}}, so the files read back with the same dotted keys."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                node = None  # a key is both a value and a prefix: keep it flat
                break
            node = child
        if node is None:
            out[key] = value
        else:
            node[parts[-1]] = value
    return out


def _replace(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _write_json(path: Path, data: Any) -> None:
    # NaN and infinity are kept as JSON's de facto NaN/Infinity, which gitexp, DVC and
    # Python read; a value that is not a number never gets here.
    _replace(path, json.dumps(data, indent=2, allow_nan=True) + "\n")


def _record(run: ActiveRun) -> str | None:
    """Commits a run that does not belong to a `gitexp run`, as `gitexp run` would."""
    from gitexp.store.git import Repo
    from gitexp.workflows.run import record_api_run

    repo = Repo.discover(".")

    def warn(message: str) -> None:
        print(f"gitexp: warning: {message}", file=sys.stderr)

    return record_api_run(
        repo,
        name=run.name,
        started=run.started,
        status=run.status or "success",
        tags=run.tags,
        artifacts=run.artifacts,
        log=run.error or "",
        parent=run.parent.name if run.parent else None,
        warn=warn,
    )


# --- the fluent API ---------------------------------------------------------------------------


def start_run(
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    experiment: str | None = None,
    nested: bool = False,
    dir: str = DEFAULT_DIR,  # noqa: A002 - DVCLive's name for it
) -> ActiveRun:
    with _lock:
        parent = _active[-1] if _active else None
        if parent is not None and not nested:
            raise UsageError(
                f"run '{parent.name}' is already active: end it first, or start_run(nested=True)"
            )
        if parent is not None and parent.joined and not nested:
            parent = None
        run = ActiveRun(name, params, tags, experiment, dir, parent)
        if not run.joined:
            _check_recordable(run.name)
        _active.append(run)
        return run


def _check_recordable(name: str | None) -> None:
    """Fails at the start, not after training: outside a git repository, without a commit,
    or with a run name that is invalid or taken."""
    from gitexp.core.names import check_free, validate_name
    from gitexp.errors import StateError
    from gitexp.store.git import Repo
    from gitexp.store.records import run_names

    repo = Repo.discover(".")
    if repo.head() is None:
        raise StateError("this repository has no commit yet: make a first commit, then run again")
    if name is not None:
        check_free(validate_name(name), *run_names(repo))


def active_run() -> ActiveRun | None:
    return _active[-1] if _active else None


def _current() -> ActiveRun:
    """The active run, started on first use as MLflow does."""
    return active_run() or start_run()


def end_run(status: str = "FINISHED") -> None:
    run = active_run()
    if run is not None:
        run.end(status)


def log_param(key: str, value: Any) -> None:
    _current().log_param(key, value)


def log_params(params: Mapping[str, Any]) -> None:
    _current().log_params(params)


def log_metric(key: str, value: Any, step: int | None = None) -> None:
    _current().log_metric(key, value, step)


def log_metrics(metrics: Mapping[str, Any], step: int | None = None) -> None:
    _current().log_metrics(metrics, step)


def set_tag(key: str, value: Any) -> None:
    _current().set_tag(key, value)


def set_tags(tags: Mapping[str, Any]) -> None:
    _current().set_tags(tags)


def log_artifact(path: str | os.PathLike[str]) -> None:
    _current().log_artifact(path)


def log_artifacts(directory: str | os.PathLike[str]) -> None:
    _current().log_artifacts(directory)


def log_text(text: str, artifact_file: str) -> None:
    _current().log_text(text, artifact_file)


def log_dict(obj: Any, artifact_file: str) -> None:
    _current().log_dict(obj, artifact_file)


def log_figure(figure: Any, artifact_file: str) -> None:
    _current().log_figure(figure, artifact_file)


def log_image(image: Any, artifact_file: str) -> None:
    _current().log_image(image, artifact_file)


def _at_exit() -> None:
    """A script that logged without a `with` block still gets its run recorded."""
    for run in reversed(list(_active)):
        try:
            run.end("FINISHED")
        except GitexpError as exc:
            print(f"gitexp: error: {exc}", file=sys.stderr)


atexit.register(_at_exit)
