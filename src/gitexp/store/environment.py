"""What a run ran on: Python, platform, CPU, GPU, installed packages, and the environment
variables the user lists in `gitexp.yaml` (`env: [CUDA_VISIBLE_DEVICES, ...]`).

Variables are recorded only when listed, and never when their name looks secret (row X1).
"""

from __future__ import annotations

import glob
import json
import os
import platform
import sys
from collections.abc import Iterable
from typing import Any

from gitexp.core.secrets import looks_secret


def cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def gpu_models() -> list[str]:
    """NVIDIA GPUs the driver shows, read from /proc (no nvidia-smi process)."""
    models = []
    for info in sorted(glob.glob("/proc/driver/nvidia/gpus/*/information")):
        try:
            with open(info) as fh:
                for line in fh:
                    if line.startswith("Model:"):
                        models.append(line.split(":", 1)[1].strip())
        except OSError:
            continue
    return models


def installed_packages() -> dict[str, str]:
    """Distributions of the running Python and their versions, from the names of their
    `.dist-info` folders (reading every METADATA file would cost ~80 ms a run)."""
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            stem, dot, kind = name.rpartition(".")
            if kind not in ("dist-info", "egg-info") or "-" not in stem:
                continue
            dist, _, version = stem.partition("-")
            found.setdefault(dist.lower().replace("_", "-"), version.split("-")[0])
    return dict(sorted(found.items()))


def capture(env_names: Iterable[str] = ()) -> dict[str, Any]:
    variables = {
        name: os.environ[name]
        for name in env_names
        if name in os.environ and not looks_secret(name)
    }
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": {"count": os.cpu_count(), "model": cpu_model()},
        "gpu": gpu_models(),
        "packages": installed_packages(),
        "env": variables,
    }


# What stays in the run record; the rest (packages, hardware) repeats across runs and is kept
# once, as `.gitexp/environment.json` in the run's tree (identical environments share it).
IN_RECORD = ("python", "platform", "env")


def split(captured: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """(the record's part, the shared part as canonical JSON bytes)."""
    shared = {k: v for k, v in captured.items() if k != "env"}
    return {k: captured[k] for k in IN_RECORD if k in captured}, json.dumps(
        shared, sort_keys=True, indent=1
    ).encode()


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(what, old, new) for everything that differs between two runs' environments."""
    changes = []
    for field in ("python", "platform", "cpu", "gpu"):
        if old.get(field) != new.get(field):
            changes.append((field, old.get(field), new.get(field)))
    for group, label in (("packages", "package"), ("env", "env")):
        before, after = old.get(group) or {}, new.get(group) or {}
        for name in sorted(set(before) | set(after)):
            if before.get(name) != after.get(name):
                changes.append((f"{label} {name}", before.get(name), after.get(name)))
    return changes
