"""Named points in `run` where tests inject faults (RELIABILITY §3.0).

`GITEXP_FAULT=<phase>:<sigkill|sigint|sigterm|raise|enospc|eio>` fires the fault when the run
reaches that phase. Costs one dictionary lookup when unset.
"""

from __future__ import annotations

import errno
import os
import signal

PHASES = (
    "lock-acquired",
    "params-journaled",
    "params-written",
    "command-started",
    "command-exited",
    "dvc-commit",
    "index-built",
    "tree-written",
    "commit-written",
    "ref-prepared",
    "ref-committed",
    "params-restored",
    "lock-released",
)
# gitexp apply and checkout: after the journal, after the files, before the data
APPLY_PHASES = ("apply-writing", "apply-written", "checkout-started", "checkout-moved")

_SIGNALS = {"sigkill": signal.SIGKILL, "sigint": signal.SIGINT, "sigterm": signal.SIGTERM}


class InjectedFault(RuntimeError):
    """A deliberate crash, standing in for a bug inside gitexp (row A7)."""


def fault_point(phase: str) -> None:
    spec = os.environ.get("GITEXP_FAULT")
    if not spec:
        return
    target, _, action = spec.partition(":")
    if target != phase:
        return
    if action in _SIGNALS:
        os.kill(os.getpid(), _SIGNALS[action])
    elif action == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    elif action == "eio":
        raise OSError(errno.EIO, os.strerror(errno.EIO))
    else:
        raise InjectedFault(f"injected fault at {phase}")
