"""`gitexp.autolog()`: an estimator's `fit` logs its params and a training score, as
`mlflow.sklearn.autolog` does for scikit-learn's estimators."""

from __future__ import annotations

import contextlib
import functools
import threading
from typing import Any

_state = threading.local()
_patched: list[tuple[type, Any]] = []
_options = {"log_models": False, "own_runs": False}


def autolog(disable: bool = False, log_models: bool = False, own_runs: bool = False) -> None:
    """Patches the `fit` of every scikit-learn estimator (once); `disable=True` undoes it.
    `log_models` also logs the fitted estimator as the run's `model`; `own_runs` gives a
    `fit` outside any run a run of its own, ended after it (mlflow.sklearn.autolog)."""
    _options.update(log_models=log_models, own_runs=own_runs)
    if disable:
        for cls, original in _patched:
            cls.fit = original
        _patched.clear()
        return
    if _patched:
        return
    from sklearn.utils import all_estimators

    for _, cls in all_estimators():
        fit = cls.__dict__.get("fit")
        if fit is not None:
            _patched.append((cls, fit))
            cls.fit = _wrap(fit)


def _wrap(fit: Any) -> Any:
    @functools.wraps(fit)
    def logged_fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        depth = getattr(_state, "depth", 0)
        _state.depth = depth + 1
        try:
            result = fit(self, *args, **kwargs)
        finally:
            _state.depth = depth
        if depth == 0:  # the estimator the user called, not the ones it fits inside
            x = args[0] if args else kwargs.get("X")
            y = args[1] if len(args) > 1 else kwargs.get("y")
            _state.depth = 1  # scoring fits helpers (a LabelEncoder): not the user's fit
            try:
                _log(self, x, y)
            finally:
                _state.depth = 0
        return result

    return logged_fit


def _log(estimator: Any, x: Any, y: Any) -> None:
    from gitexp.tracking import fluent

    params = {k: v for k, v in estimator.get_params(deep=False).items() if _plain(v)}
    own = _options["own_runs"] and fluent.active_run() is None
    run = fluent._current()
    run.log_params(params)
    run.set_tag("estimator_class", type(estimator).__name__)
    run.set_tag("estimator_name", type(estimator).__name__)
    if y is not None and hasattr(estimator, "score"):
        # A score that cannot be computed (unlabeled data, a custom y) is simply not logged.
        with contextlib.suppress(Exception):
            run.log_metric("training_score", float(estimator.score(x, y)))
        with contextlib.suppress(Exception):
            run.log_metrics(_training_metrics(estimator, x, y))
    if _options["log_models"]:
        from gitexp.tracking.models import log_model

        log_model(estimator, "model")
    if own:
        run.end("FINISHED")


def _training_metrics(estimator: Any, x: Any, y: Any) -> dict[str, float]:
    """MLflow's names for the training metrics of classifiers and regressors."""
    from sklearn import metrics
    from sklearn.base import is_classifier, is_regressor

    predicted = estimator.predict(x)
    if is_classifier(estimator):
        average = "weighted"
        return {
            "training_accuracy_score": metrics.accuracy_score(y, predicted),
            "training_precision_score": metrics.precision_score(
                y, predicted, average=average, zero_division=0
            ),
            "training_recall_score": metrics.recall_score(
                y, predicted, average=average, zero_division=0
            ),
            "training_f1_score": metrics.f1_score(y, predicted, average=average, zero_division=0),
        }
    if is_regressor(estimator):
        mse = metrics.mean_squared_error(y, predicted)
        return {
            "training_mean_squared_error": mse,
            "training_root_mean_squared_error": mse**0.5,
            "training_mean_absolute_error": metrics.mean_absolute_error(y, predicted),
            "training_r2_score": metrics.r2_score(y, predicted),
        }
    return {}


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))
