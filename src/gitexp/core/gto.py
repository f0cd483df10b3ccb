"""GTO's tag grammar (gto/constants.py, GTO 1.10), shared by the registry and by push:

    NAME@vX.Y.Z[!]   register (deregister)      NAME#STAGE[!]#N   assign (unassign)
    NAME@deprecated  deprecate

Pure: no git here.
"""

from __future__ import annotations

import re
from typing import Any

# GTO's grammar (gto/constants.py, GTO 1.10).
_NAME = r"[a-zA-Z0-9]([a-zA-Z0-9-/_]*[a-zA-Z0-9])?"
_SEMVER = (
    r"(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<prerelease>(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+(?P<buildmetadata>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)
_FULLNAME = rf"(?P<dirname>[a-zA-Z0-9-_./]+:)?(?P<name>{_NAME})"
NAME_RE = re.compile(f"^{_FULLNAME}$")
STAGE_RE = re.compile(f"^{_NAME}$")
VERSION_RE = re.compile(f"^v{_SEMVER}$")
TAG_RE = re.compile(
    f"^(?P<artifact>{_FULLNAME.replace(':', '=')})"
    rf"(((#(?P<stage>{_NAME})|@(?P<version>v{_SEMVER}))(?P<cancel>!?))"
    r"|@((?P<deprecated>deprecated)|(?P<created>created)))(#(?P<counter>[0-9]+))?$"
)


def semver_key(version: str) -> tuple[Any, ...]:
    match = VERSION_RE.match(version)
    if not match:
        return (-1,)
    pre = match["prerelease"]
    # A release sorts after its prereleases (semver's rule); prerelease parts compare
    # numerically when numeric.
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in (pre or "").split("."))
    return (int(match["major"]), int(match["minor"]), int(match["patch"]), pre is None, parts)


def is_registry_tag(name: str) -> bool:
    return TAG_RE.match(name) is not None
