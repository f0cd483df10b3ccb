"""Logging from training code: MLflow's fluent API, with a git commit for each run.

    import gitexp as mlflow
    mlflow.set_experiment("iris")
    with mlflow.start_run(run_name="rf") as run:
        mlflow.log_param("n_estimators", 100)
        for epoch in range(10):
            mlflow.log_metric("loss", loss, step=epoch)

Files are written in DVCLive's layout, under `dvclive/` by default: `metrics.json` (the latest
value of each metric), `plots/metrics/<key>.tsv` (`timestamp<TAB>step<TAB>value` rows) and
`params.yaml`; artifacts go under `dvclive/artifacts/`. Writes are buffered and flushed every
few seconds and at the end, so a killed process keeps what was logged before the last flush.

A run's id is its name (`refs/runs/<experiment>/<run>`). Under `gitexp run` the run joins the
outer one (that run commits); otherwise the end of the run records it as `gitexp run` does.
A run left open is ended when the process ends: `failed` with the traceback after an uncaught
exception, `interrupted` after Ctrl-C or SIGTERM, else finished.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gitexp.errors import GitexpError, UsageError
from gitexp.tracking import context
from gitexp.tracking.entities import (
    MLFLOW_TO_STATUS,
    Experiment,
    Run,
    RunData,
    RunInfo,
)

DEFAULT_DIR = "dvclive"
ARTIFACTS = "artifacts"
FLUSH_SECONDS = 2.0
_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/ :]*$")
_NAME_PART = re.compile(r"[^A-Za-z0-9._-]+")
_active: list[ActiveRun] = []
_lock = threading.RLock()
_last: dict[str, str | None] = {"run_id": None}
_exit: dict[str, str | None] = {"status": None, "error": None}


def _check_key(key: Any, what: str) -> str:
    if not isinstance(key, str) or not _KEY.match(key) or ".." in key or key.endswith("/"):
        raise UsageError(
            f"invalid {what} name {key!r}: use letters, digits, '_', '-', '.', '/' and spaces"
        )
    return key


def _check_metric(key: str, value: Any) -> float | int:
    plain = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not plain and hasattr(value, "item") and not hasattr(value, "__len__"):  # numpy, torch
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"metric '{key}' must be a number, not {type(value).__name__}")
    return value


def _now_ms() -> int:
    return int(time.time() * 1000)


class ActiveRun:
    """One run being logged; a context manager (`with gitexp.start_run() as run:`) with
    MLflow's `run.info` and `run.data`."""

    def __init__(
        self,
        name: str | None,
        params: Mapping[str, Any] | None,
        tags: Mapping[str, str] | None,
        experiment: str | Experiment | None,
        directory: str,
        parent: ActiveRun | None,
        *,
        run_name: str | None = None,
        description: str | None = None,
        root: Path | None = None,
    ) -> None:
        self.joined = os.environ.get("GITEXP_RUN_NAME") if parent is None else None
        if isinstance(experiment, str):
            _check_key(experiment, "experiment")
            experiment = Experiment(experiment, experiment, "")
        self.experiment = experiment
        group = experiment.experiment_id if experiment and experiment.experiment_id != "0" else None
        self.name = self.joined or (f"{group}/{name}" if group and name else name)
        self.run_name = run_name or (self.name.rsplit("/", 1)[-1] if self.name else None)
        self.parent = parent
        self.dir = Path(directory) if root is None else root / directory
        self.started = time.time()
        self.params: dict[str, Any] = {}
        self.tags: dict[str, str] = {}
        self.metrics: dict[str, Any] = {}
        self._rows: dict[str, list[str]] = {}
        self._dirty = False
        self._last_flush = time.monotonic()
        self.artifacts: list[str] = []
        self.artifact_paths: dict[str, str] = {}  # MLflow artifact path -> repository path
        self.inputs: list[dict[str, Any]] = []
        self.models: dict[str, dict[str, Any]] = {}
        self.resumes: str | None = None
        self.after_record: list[Any] = []  # registrations waiting for the run's commit
        self.status: str | None = None
        self.error: str | None = None
        self.commit: str | None = None
        self._stash: Path | None = None
        self.live: Any = None  # what `gitexp ui` sees of the run until it is recorded
        self._prepare_directory()
        if description:
            self.tags["mlflow.note.content"] = str(description)
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
        shutil.rmtree(self.dir / ARTIFACTS, ignore_errors=True)

    # --- MLflow's view of the run ---------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self.name or ""

    @property
    def info(self) -> RunInfo:
        from gitexp.tracking.entities import STATUS_TO_MLFLOW

        status = STATUS_TO_MLFLOW.get(self.status or "running", "RUNNING")
        return RunInfo(
            run_id=self.run_id,
            run_name=self.run_name or "",
            experiment_id=self.experiment.experiment_id if self.experiment else "0",
            user_id=os.environ.get("USER", ""),
            status=status,
            start_time=int(self.started * 1000),
            end_time=None if self.status is None else _now_ms(),
            artifact_uri=self.artifact_uri(),
        )

    @property
    def data(self) -> RunData:
        return RunData(
            metrics={k: float(v) for k, v in self.metrics.items()},
            params={k: str(v) for k, v in self.params.items()},
            tags=dict(self.tags),
        )

    def artifact_uri(self, path: str | None = None) -> str:
        uri = f"runs:/{self.run_id}"
        return f"{uri}/{path.lstrip('/')}" if path else uri

    # --- logging --------------------------------------------------------------------------

    def log_param(self, key: str, value: Any) -> Any:
        self.log_params({key: value})
        return value

    def log_params(self, params: Mapping[str, Any]) -> None:
        with _lock:
            for key, value in params.items():
                self.params[_check_key(key, "param")] = value
            self._write_params()

    def log_metric(
        self, key: str, value: Any, step: int | None = None, timestamp: int | None = None
    ) -> None:
        _check_key(key, "metric")
        value = _check_metric(key, value)
        with _lock:
            self.metrics[key] = value
            if step is not None:
                stamp = _now_ms() if timestamp is None else int(timestamp)
                self._rows.setdefault(key, []).append(f"{stamp}\t{int(step)}\t{value!r}\n")
            self._dirty = True
            if time.monotonic() - self._last_flush > FLUSH_SECONDS:
                self.flush()

    def log_metrics(
        self, metrics: Mapping[str, Any], step: int | None = None, timestamp: int | None = None
    ) -> None:
        for key, value in metrics.items():
            self.log_metric(key, value, step, timestamp)

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        with _lock:
            for key, value in tags.items():
                self.tags[_check_key(key, "tag")] = str(value)
            self._write_manifest()

    def delete_tag(self, key: str) -> None:
        with _lock:
            if key not in self.tags:
                raise UsageError(f"run '{self.run_id}' has no tag '{key}'")
            del self.tags[key]
            self._write_manifest()

    def _write_manifest(self) -> None:
        """Inside `gitexp run`, tags and artifacts reach the outer run through a file it
        names in GITEXP_RUN_MANIFEST."""
        manifest = os.environ.get("GITEXP_RUN_MANIFEST") if self.joined else None
        if manifest:
            _write_json(Path(manifest), {"tags": self.tags, "artifacts": self.artifacts})

    def _artifact_dir(self, artifact_path: str | None) -> Path:
        target = self.dir / ARTIFACTS
        if artifact_path:
            target = target / _check_key(artifact_path.strip("/"), "artifact path")
        target.mkdir(parents=True, exist_ok=True)
        return target

    def _inside_repo(self, path: Path) -> bool:
        from gitexp.store.git import Repo

        root = Repo.discover(context.tracking_path()).root.resolve()
        return root in path.resolve().parents

    def log_artifact(
        self, local_path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> None:
        """A file or folder the run keeps. With `artifact_path` (or from outside the
        repository) it is copied under the run's `artifacts/` folder, as MLflow does; else it
        is kept where it is. Small text files go in git, binary or large ones to DVC."""
        source = Path(local_path)
        if not source.exists():
            raise UsageError(f"artifact '{local_path}' does not exist")
        if artifact_path is not None or not self._inside_repo(source):
            target = self._artifact_dir(artifact_path) / source.name
            if source.resolve() != target.resolve():
                if source.is_dir():
                    shutil.copytree(source, target, dirs_exist_ok=True)
                else:
                    shutil.copy2(source, target)
            self._add_artifact(target)
            return
        self._add_artifact(source, source.name)

    def log_artifacts(
        self, local_dir: str | os.PathLike[str], artifact_path: str | None = None
    ) -> None:
        """The contents of a folder, under `artifact_path` (MLflow's layout)."""
        source = Path(local_dir)
        if not source.is_dir():
            raise UsageError(f"artifact folder '{local_dir}' does not exist")
        if artifact_path is None and self._inside_repo(source):
            self._add_artifact(source)
            for child in source.iterdir():  # each entry keeps its MLflow path
                self.artifact_paths[child.name] = os.path.abspath(child)
            return
        target = self._artifact_dir(artifact_path)
        shutil.copytree(source, target, dirs_exist_ok=True)
        self._add_artifact(target)

    def _add_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        with _lock:
            full = os.path.abspath(path)
            if full not in self.artifacts:
                self.artifacts.append(full)
            if artifact_path is not None:  # kept in place: remember its MLflow path
                self.artifact_paths[artifact_path] = full
            self._write_manifest()

    def _artifact_file(self, artifact_file: str) -> Path:
        path = self.dir / ARTIFACTS / _check_key(artifact_file.strip("/"), "artifact")
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def log_text(self, text: str, artifact_file: str) -> None:
        path = self._artifact_file(artifact_file)
        path.write_text(text)
        self._add_artifact(path)

    def log_dict(self, dictionary: Any, artifact_file: str) -> None:
        if artifact_file.endswith((".yaml", ".yml")):
            import yaml

            self.log_text(yaml.safe_dump(dictionary, sort_keys=False), artifact_file)
        else:
            self.log_text(json.dumps(dictionary, indent=2) + "\n", artifact_file)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        path = self._artifact_file(artifact_file)
        if hasattr(figure, "savefig"):  # matplotlib
            figure.savefig(path)
        elif hasattr(figure, "write_html"):  # plotly
            figure.write_html(str(path)) if path.suffix == ".html" else figure.write_image(path)
        else:
            raise UsageError(
                f"log_figure takes a matplotlib or plotly figure, not {type(figure).__name__}"
            )
        self._add_artifact(path)

    def log_image(
        self,
        image: Any,
        artifact_file: str | None = None,
        key: str | None = None,
        step: int | None = None,
        timestamp: int | None = None,
    ) -> None:
        """MLflow's two forms: `artifact_file`, or `key` and `step` (kept as
        `images/<key>/step_<step>.png`)."""
        if artifact_file is None:
            if key is None:
                raise UsageError("log_image needs artifact_file, or key (and step)")
            _check_key(key, "image key")
            stamp = _now_ms() if timestamp is None else int(timestamp)
            artifact_file = f"images/{key}/step_{int(step or 0)}_{stamp}.png"
        path = self._artifact_file(artifact_file)
        if hasattr(image, "save"):  # a PIL image
            image.save(path)
        else:
            import numpy

            array = numpy.asarray(image)
            try:
                from PIL import Image

                if array.dtype.kind == "f":
                    array = (numpy.clip(array, 0, 1) * 255).astype("uint8")
                Image.fromarray(array).save(path)
            except ImportError:
                import matplotlib.image

                matplotlib.image.imsave(path, array)
        self._add_artifact(path)

    def log_table(self, data: Any, artifact_file: str) -> None:
        """A table (a dict of columns or a pandas DataFrame) as MLflow's JSON: columns and
        rows."""
        if hasattr(data, "to_dict") and hasattr(data, "columns"):
            columns = [str(c) for c in data.columns]
            rows = data.astype(object).where(data.notna(), None).values.tolist()
        elif isinstance(data, Mapping):
            columns = [str(c) for c in data]
            values = [list(v) for v in data.values()]
            lengths = {len(v) for v in values}
            if len(lengths) > 1:
                raise UsageError("log_table: every column must have the same length")
            rows = [list(row) for row in zip(*values, strict=True)]
        else:
            raise UsageError("log_table takes a dict of columns or a pandas DataFrame")
        payload = {"columns": columns, "data": rows}
        self.log_text(json.dumps(payload, default=str) + "\n", artifact_file)

    def log_input(
        self, dataset: Any, context: str | None = None, tags: Mapping[str, str] | None = None
    ) -> None:
        """A dataset the run used: a path (DVC-tracked or not; its hash is recorded) or an
        MLflow dataset object (its name, digest and source)."""
        from gitexp.tracking.datasets import describe

        entry = describe(dataset, context_path=context and str(context))
        entry["context"] = context
        entry["tags"] = {str(k): str(v) for k, v in (tags or {}).items()}
        with _lock:
            self.inputs.append(entry)

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
                        fh.write(f"timestamp\tstep\t{key}\n")
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

    # A nested run writes to the same folder: the parent's files wait in .git/gitexp/ until
    # the child is recorded, so each run's commit holds its own files only.
    def _suspend(self) -> None:
        self.flush()
        if self.dir.exists():
            from gitexp.store.git import Repo

            repo = Repo.discover(context.tracking_path())
            stash = repo.gitexp_dir / "tmp" / f"nested.{os.getpid()}.{id(self)}"
            stash.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(stash, ignore_errors=True)
            shutil.move(str(self.dir), str(stash))
            self._stash = stash

    def _resume(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        if self._stash is not None:
            shutil.move(str(self._stash), str(self.dir))
            self._stash = None

    # --- ending -----------------------------------------------------------------------------

    def end(self, status: str = "FINISHED") -> None:
        if self.status is not None:
            return
        self.status = MLFLOW_TO_STATUS.get(status.upper(), status.lower())
        if self.status not in ("success", "failed", "interrupted"):
            self.status = None
            raise UsageError(f"invalid run status '{status}': use FINISHED, FAILED or KILLED")
        self.flush()
        with _lock:
            if self in _active:
                _active.remove(self)
        try:
            if not self.joined:
                self.commit = _record(self)
        finally:
            if self.live is not None:
                self.live.close()
            if self.parent is not None:
                self.parent._resume()
            _last["run_id"] = self.run_id
        if self.commit is not None:
            for action in self.after_record:
                action()

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None or (exc_type is SystemExit and exc.code in (0, None)):
            self.end("FINISHED")
            return
        self.error = "".join(traceback.format_exception(exc_type, exc, tb))
        killed = issubclass(exc_type, (KeyboardInterrupt, _Signalled))
        self.end("KILLED" if killed else "FAILED")


class _Signalled(SystemExit):
    """SIGTERM or SIGHUP while a run is open: unwinds like Ctrl-C, exits 128 + signal."""


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

    repo = Repo.discover(context.tracking_path())
    root = repo.root.resolve()

    def warn(message: str) -> None:
        print(f"gitexp: warning: {message}", file=sys.stderr)

    def relative(path: str) -> str:
        try:
            return Path(path).resolve().relative_to(root).as_posix()
        except ValueError:
            return path

    experiment = run.experiment
    extra: dict[str, Any] = {
        "run_name": run.run_name,
        "artifact_root": relative(str(run.dir / ARTIFACTS)),
        "artifacts": {k: relative(v) for k, v in run.artifact_paths.items()},
        "datasets": run.inputs,
        "models": run.models,
    }
    if experiment is not None and experiment.experiment_id != "0":
        extra["experiment"] = experiment.name  # its id is the run's group
    if run.resumes:
        extra["resumes"] = run.resumes
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
        extra=extra,
        take_lock=not os.environ.get("GITEXP_RUN_NAME"),
    )


# --- the fluent API ---------------------------------------------------------------------------


def _leaf(run_name: str) -> str:
    """MLflow's free-form run name as a ref component ('rf depth 3' -> 'rf-depth-3')."""
    leaf = _NAME_PART.sub("-", run_name).strip("-.") or "run"
    return leaf.removesuffix(".lock")[:60]


def _unique(name: str, existing: list[str]) -> str:
    """MLflow allows two runs with one name; gitexp's names are refs, so the second gets -2."""
    taken = {n.lower() for n in existing}
    candidate, n = name, 1
    while candidate.lower() in taken or any(t.startswith(candidate.lower() + "/") for t in taken):
        n += 1
        candidate = f"{name}-{n}"
    return candidate


def _experiment_for(experiment_id: str | None, experiment: str | None) -> Experiment | None:
    from gitexp.tracking import experiments as store

    if experiment_id is None and experiment is None:
        experiment_id = context.current_experiment_id()
        if experiment_id is None:
            name = os.environ.get("MLFLOW_EXPERIMENT_NAME")
            if name:
                return set_experiment(name)
            experiment_id = os.environ.get("MLFLOW_EXPERIMENT_ID")
    if experiment is not None:
        return Experiment(experiment, experiment, "")
    if experiment_id is None or str(experiment_id) == store.DEFAULT_ID:
        return None
    repo = _repo()
    from gitexp.store.records import run_names

    found = store.find(repo, experiment_id=str(experiment_id), run_names=run_names(repo)[0])
    if found is None:
        raise UsageError(f"no experiment with id '{experiment_id}': see search_experiments()")
    return found


def _repo() -> Any:
    from gitexp.store.git import Repo

    return Repo.discover(context.tracking_path())


def start_run(
    run_id: str | None = None,
    experiment_id: str | None = None,
    run_name: str | None = None,
    nested: bool = False,
    parent_run_id: str | None = None,
    tags: Mapping[str, Any] | None = None,
    description: str | None = None,
    log_system_metrics: bool | None = None,
    *,
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    experiment: str | None = None,
    dir: str = DEFAULT_DIR,  # noqa: A002 - DVCLive's name for it
) -> ActiveRun:
    """MLflow's `start_run`; `name=` is gitexp's exact run name (refused if taken), while
    MLflow's `run_name=` is made unique (`-2`) as MLflow allows repeated names. `run_id`
    joins a run active in this process, or continues a recorded one as a new run that starts
    from its params, metrics, histories and tags."""
    del log_system_metrics  # gitexp records the machine in every run record instead
    with _lock:
        if run_id is not None:
            for run in _active:
                if run.run_id == run_id:
                    return run
        parent = _active[-1] if _active else None
        if parent is not None and not nested:
            raise UsageError(
                f"run '{parent.name}' is already active: end it first, or start_run(nested=True)"
            )
        if parent_run_id is not None and (parent is None or parent.run_id != parent_run_id):
            raise UsageError(f"parent run '{parent_run_id}' is not the active run")
    joined = os.environ.get("GITEXP_RUN_NAME") if parent is None else None
    repo = _repo()
    resumed = _resumed(repo, run_id) if run_id is not None else None
    if resumed is not None and experiment_id is None and experiment is None:
        experiment_id = resumed.info.experiment_id  # it continues in its own experiment
    exp = None if joined else _experiment_for(experiment_id, experiment)
    leaf = name
    if not joined and leaf is None:
        from gitexp.core.names import generate_name
        from gitexp.store.records import run_names

        existing = run_names(repo)[0]
        group = exp.experiment_id + "/" if exp and exp.experiment_id != "0" else ""
        in_group = [n[len(group) :] for n in existing if n.startswith(group)]
        base = (
            _leaf(run_name)
            if run_name
            else (f"{resumed.info.run_name}-resumed" if resumed else generate_name(existing))
        )
        leaf = _unique(base, in_group if group else existing)
    with _lock:
        if parent is not None:
            parent._suspend()
        try:
            run = ActiveRun(
                leaf,
                None,
                None,
                exp,
                dir,
                parent,
                run_name=run_name,
                description=description,
                root=repo.root,
            )
            if not run.joined:
                _check_recordable(repo, run.name)
                from gitexp.store.live import LiveEntry

                command = [sys.executable, *sys.argv]
                run.live = LiveEntry(repo, run.name, command, metrics_dir=str(run.dir)).open()
        except BaseException:
            if parent is not None:
                parent._resume()
            raise
        if resumed is not None:
            _continue_from(run, repo, resumed)
        if params:
            run.log_params(params)
        if tags:
            run.set_tags(tags)
        _active.append(run)
    _install_exit_handlers()
    return run


def _resumed(repo: Any, run_id: str) -> Run:
    from gitexp.tracking.api import get_run

    return get_run(run_id, path=str(repo.root))


def _continue_from(run: ActiveRun, repo: Any, old: Run) -> None:
    """A new run that carries on from a recorded one: its params, latest metrics, tags and
    metric histories (MLflow reopens the run; a commit cannot be reopened)."""
    record = old.record
    for flat in (record.get("params") or {}).values():
        if isinstance(flat, dict):
            run.params.update(flat)
    for flat in (record.get("metrics") or {}).values():
        if isinstance(flat, dict):
            run.metrics.update({k: v for k, v in flat.items() if isinstance(v, (int, float))})
    run.tags.update(record.get("tags") or {})
    run.resumes = old.info.run_id
    with repo.batch_reader() as reader:
        listing = repo.git(
            [
                "ls-tree",
                "-r",
                "-z",
                "--name-only",
                old.rev or "",
                "--",
                f"{DEFAULT_DIR}/plots/metrics",
            ]
        ).stdout
        paths = [p for p in listing.decode().split("\0") if p.endswith(".tsv")]
        for path, data in zip(
            paths, reader.read_many([f"{old.rev}:{p}" for p in paths]), strict=True
        ):
            if data is not None:
                target = run.dir / "plots" / "metrics" / Path(path).name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
    run._write_params()
    run._dirty = True
    run.flush()


def _check_recordable(repo: Any, name: str | None) -> None:
    """Fails at the start, not after training: outside a git repository, without a commit,
    or with a run name that is invalid or taken."""
    from gitexp.core.names import check_free, validate_name
    from gitexp.errors import StateError
    from gitexp.store.records import run_names

    if repo.head() is None:
        raise StateError("this repository has no commit yet: make a first commit, then run again")
    if name is not None:
        check_free(validate_name(name), *run_names(repo))


def active_run() -> ActiveRun | None:
    return _active[-1] if _active else None


def last_active_run() -> Run | ActiveRun | None:
    """The active run, else the last one this process ended (read back from git)."""
    run = active_run()
    if run is not None:
        return run
    if _last["run_id"] is None:
        return None
    from gitexp.tracking.api import get_run

    return get_run(_last["run_id"])


def _current() -> ActiveRun:
    """The active run, started on first use as MLflow does."""
    return active_run() or start_run()


def end_run(status: str = "FINISHED") -> None:
    run = active_run()
    if run is not None:
        run.end(status)


def get_artifact_uri(artifact_path: str | None = None) -> str:
    return _current().artifact_uri(artifact_path)


def set_experiment(
    experiment_name: str | None = None, experiment_id: str | None = None
) -> Experiment:
    """Makes an experiment current, creating it when the name is new (as MLflow does)."""
    from gitexp.store.records import run_names
    from gitexp.tracking import experiments as store

    if (experiment_name is None) == (experiment_id is None):
        raise UsageError("set_experiment takes experiment_name or experiment_id (one of them)")
    repo = _repo()
    names = run_names(repo)[0]
    if experiment_id is not None:
        found = store.find(repo, experiment_id=str(experiment_id), run_names=names)
        if found is None:
            raise UsageError(f"no experiment with id '{experiment_id}'")
    else:
        assert experiment_name is not None
        found = store.find(repo, name=experiment_name, run_names=names)
        if found is None:
            found = store.create(repo, experiment_name, run_names=names)
    context.set_current_experiment_id(found.experiment_id)
    return found


def create_experiment(
    name: str, artifact_location: str | None = None, tags: Mapping[str, Any] | None = None
) -> str:
    from gitexp.store.records import run_names
    from gitexp.tracking import experiments as store

    repo = _repo()
    tag_map = {str(k): str(v) for k, v in (tags or {}).items()}
    return store.create(repo, name, tag_map, artifact_location, run_names(repo)[0]).experiment_id


def get_experiment(experiment_id: str) -> Experiment:
    from gitexp.store.records import run_names
    from gitexp.tracking import experiments as store

    repo = _repo()
    found = store.find(repo, experiment_id=str(experiment_id), run_names=run_names(repo)[0])
    if found is None:
        raise UsageError(f"no experiment with id '{experiment_id}'")
    return found


def get_experiment_by_name(name: str) -> Experiment | None:
    from gitexp.store.records import run_names
    from gitexp.tracking import experiments as store

    repo = _repo()
    return store.find(repo, name=name, run_names=run_names(repo)[0])


def search_experiments(
    view_type: int = 1,
    max_results: int | None = None,
    filter_string: str | None = None,
    order_by: list[str] | None = None,
) -> list[Experiment]:
    """Experiments, filtered with MLflow's grammar on `name` and `tags.*`."""
    from gitexp.store.records import run_names
    from gitexp.tracking import experiments as store
    from gitexp.tracking import filters

    if view_type == 2:  # DELETED_ONLY: gitexp keeps no deleted experiments
        return []
    repo = _repo()
    found = store.list_experiments(repo, run_names(repo)[0])
    clauses = filters.parse(filter_string)

    def lookup(e: Experiment, key: filters.Key) -> Any:
        if key.kind == "tags":
            return e.tags.get(key.name)
        return {
            "name": e.name,
            "experiment_id": e.experiment_id,
            "creation_time": e.creation_time,
            "last_update_time": e.last_update_time,
            "lifecycle_stage": e.lifecycle_stage,
        }.get(key.name)

    found = [e for e in found if filters.matches(clauses, lambda k, e=e: lookup(e, k))]
    for key, descending in reversed(filters.parse_order_by(order_by)):
        found.sort(key=lambda e, k=key: filters.sort_value(lookup(e, k)), reverse=descending)
    if not order_by:
        found.sort(key=lambda e: -(e.creation_time or 0))
    return found[:max_results] if max_results else found


def log_param(key: str, value: Any, synchronous: bool | None = None) -> Any:
    return _current().log_param(key, value)


def log_params(
    params: Mapping[str, Any], synchronous: bool | None = None, run_id: str | None = None
) -> None:
    _run_for(run_id).log_params(params)


def log_metric(
    key: str,
    value: Any,
    step: int | None = None,
    synchronous: bool | None = None,
    timestamp: int | None = None,
    run_id: str | None = None,
    **_ignored: Any,
) -> None:
    _run_for(run_id).log_metric(key, value, step, timestamp)


def log_metrics(
    metrics: Mapping[str, Any],
    step: int | None = None,
    synchronous: bool | None = None,
    run_id: str | None = None,
    timestamp: int | None = None,
    **_ignored: Any,
) -> None:
    _run_for(run_id).log_metrics(metrics, step, timestamp)


def _run_for(run_id: str | None) -> ActiveRun:
    if run_id is None:
        return _current()
    for run in _active:
        if run.run_id == run_id:
            return run
    raise UsageError(f"run '{run_id}' is not active in this process: a recorded run is a commit")


def set_tag(key: str, value: Any, synchronous: bool | None = None) -> None:
    _current().set_tag(key, value)


def set_tags(tags: Mapping[str, Any], synchronous: bool | None = None) -> None:
    _current().set_tags(tags)


def delete_tag(key: str) -> None:
    _current().delete_tag(key)


def log_artifact(
    local_path: str | os.PathLike[str], artifact_path: str | None = None, run_id: str | None = None
) -> None:
    _run_for(run_id).log_artifact(local_path, artifact_path)


def log_artifacts(
    local_dir: str | os.PathLike[str], artifact_path: str | None = None, run_id: str | None = None
) -> None:
    _run_for(run_id).log_artifacts(local_dir, artifact_path)


def log_text(text: str, artifact_file: str, run_id: str | None = None) -> None:
    _run_for(run_id).log_text(text, artifact_file)


def log_dict(dictionary: Any, artifact_file: str, run_id: str | None = None) -> None:
    _run_for(run_id).log_dict(dictionary, artifact_file)


def log_figure(
    figure: Any, artifact_file: str, *, save_kwargs: Any = None, run_id: str | None = None
) -> None:
    _run_for(run_id).log_figure(figure, artifact_file)


def log_image(
    image: Any,
    artifact_file: str | None = None,
    key: str | None = None,
    step: int | None = None,
    timestamp: int | None = None,
    synchronous: bool | None = None,
    run_id: str | None = None,
) -> None:
    _run_for(run_id).log_image(image, artifact_file, key, step, timestamp)


def log_table(data: Any, artifact_file: str, run_id: str | None = None) -> None:
    _run_for(run_id).log_table(data, artifact_file)


def log_input(
    dataset: Any,
    context: str | None = None,
    tags: Mapping[str, str] | None = None,
    model: Any = None,
) -> None:
    _current().log_input(dataset, context, tags)


# --- ending open runs with the process ----------------------------------------------------------

_installed: list[bool] = []


def _install_exit_handlers() -> None:
    """Once: an uncaught exception ends open runs as failed, with its traceback; SIGTERM and
    SIGHUP end them as interrupted (a handler the program set itself is left alone)."""
    if _installed:
        return
    _installed.append(True)
    previous_hook = sys.excepthook

    def hook(exc_type: Any, exc: Any, tb: Any) -> None:
        killed = issubclass(exc_type, KeyboardInterrupt)
        _exit["status"] = "KILLED" if killed else "FAILED"
        _exit["error"] = "".join(traceback.format_exception(exc_type, exc, tb))
        _end_all()
        previous_hook(exc_type, exc, tb)

    sys.excepthook = hook
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is signal.SIG_DFL:
            signal.signal(signum, _on_signal)


def _on_signal(signum: int, _frame: Any) -> None:
    name = signal.Signals(signum).name
    _exit["status"] = "KILLED"
    _exit["error"] = f"the process received {name}\n"
    raise _Signalled(128 + signum)


def _end_all() -> None:
    status = _exit["status"] or "FINISHED"
    for run in reversed(list(_active)):
        if run.error is None and _exit["error"]:
            run.error = _exit["error"]
        try:
            run.end(status)
        except GitexpError as exc:
            print(f"gitexp: error: {exc}", file=sys.stderr)


atexit.register(_end_all)
