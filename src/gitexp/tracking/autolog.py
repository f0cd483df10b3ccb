"""`gitexp.autolog()`: an estimator's `fit` logs its params and a training score, as
`mlflow.sklearn.autolog` does for scikit-learn's estimators."""

from __future__ import annotations

import contextlib
import functools
import threading
from typing import Any

_state = threading.local()
_patched: list[tuple[type, Any]] = []


def autolog(disable: bool = False) -> None:
    """Patches the `fit` of every scikit-learn estimator (once); `disable=True` undoes it."""
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
            _log(self, x, y)
        return result

    return logged_fit


def _log(estimator: Any, x: Any, y: Any) -> None:
    from gitexp.tracking import fluent

    params = {k: v for k, v in estimator.get_params(deep=False).items() if _plain(v)}
    run = fluent._current()
    run.log_params(params)
    run.set_tag("estimator_class", type(estimator).__name__)
    if y is not None and hasattr(estimator, "score"):
        # A score that cannot be computed (unlabeled data, a custom y) is simply not logged.
        with contextlib.suppress(Exception):
            run.log_metric("training_score", float(estimator.score(x, y)))


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))
