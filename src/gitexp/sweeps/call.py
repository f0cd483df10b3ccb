"""A Python function as a sweep's command: `python -m gitexp.sweeps.call WHERE:NAME`.

WHERE is a module importable from the repository (`train`, `pkg.train`) or a script's path
(`experiments/train.py`, run as a module named `__gitexp_call__`, so its
`if __name__ == "__main__":` block is skipped). The function gets the params (the params
file's content with the run's overrides applied, nested); if it returns a mapping, its numbers
are logged as the run's metrics. Each call is an ordinary run, so `gitexp reproduce` can run
it again.
"""

from __future__ import annotations

import importlib
import inspect
import os
import runpy
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gitexp.core import yamlio
from gitexp.core.params import DEFAULT_PARAMS_FILE
from gitexp.errors import UsageError


def reference(function: Callable[..., Any], root: Path) -> str:
    """How the sweep's command names a function, or an error when a new process cannot."""
    qualname = getattr(function, "__qualname__", "")
    module = getattr(function, "__module__", None)
    if not qualname or "<" in qualname or module is None:
        raise UsageError(
            f"cannot sweep {function!r}: pass a function defined at the top level of a module "
            "or script in the repository (each run calls it in a process of its own)"
        )
    if module == "__main__":
        script = getattr(sys.modules["__main__"], "__file__", None)
        if not script:
            raise UsageError("a function defined in an interactive session cannot be swept: "
                             "define it in a file in the repository")  # fmt: skip
        path = Path(script).resolve()
        try:
            return f"{path.relative_to(root.resolve()).as_posix()}:{qualname}"
        except ValueError:
            raise UsageError(
                f"{script} is outside the repository: move the function into it"
            ) from None
    source = inspect.getsourcefile(function)
    if source and root.resolve() not in Path(source).resolve().parents:
        raise UsageError(f"{module}.{qualname} is not in the repository, so its runs would not "
                         "record its code: define it in the repository")  # fmt: skip
    return f"{module}:{qualname}"


def _load(ref: str) -> Callable[..., Any]:
    where, _, qualname = ref.rpartition(":")
    if where.endswith(".py"):
        namespace = runpy.run_path(str(_root() / where), run_name="__gitexp_call__")
        target: Any = namespace[qualname.split(".")[0]]
    else:
        target = importlib.import_module(where)
        target = getattr(target, qualname.split(".")[0])
    for part in qualname.split(".")[1:]:
        target = getattr(target, part)
    return target


def _root() -> Path:
    from gitexp.store.git import Repo

    return Repo.discover(".").root


def main(argv: list[str]) -> int:
    import gitexp

    (ref,) = argv
    sys.path[:0] = [os.getcwd(), str(_root())]
    function = _load(ref)
    params_file = _root() / DEFAULT_PARAMS_FILE
    params = (
        yamlio.load(params_file.read_bytes(), DEFAULT_PARAMS_FILE) if params_file.exists() else {}
    )
    with gitexp.start_run():  # joins the run that `gitexp run` records
        result = function(params or {})
        if isinstance(result, Mapping):
            gitexp.log_metrics({k: v for k, v in result.items() if isinstance(v, (int, float))})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
