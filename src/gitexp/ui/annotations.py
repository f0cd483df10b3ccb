"""Tags and notes of runs: the one place the UI reads and changes them.

Today a run's tags are the ones recorded with it (`gitexp run --tag`, `set_tag` in the Python
API) and notes do not exist yet. Tags and notes added after a run ends (kept in git, beside
the run's commit) plug in here, and every page and endpoint shows them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gitexp.errors import StateError
from gitexp.store.git import Repo


@dataclass(frozen=True)
class Annotation:
    tags: dict[str, str] = field(default_factory=dict)
    note: str | None = None


def read_annotations(
    repo: Repo, runs: Sequence[tuple[str, Mapping[str, Any] | None]]
) -> dict[str, Annotation]:
    """{run name: its tags and note} for (name, record) pairs."""
    del repo  # tags and notes kept outside the record will be read from it
    return {name: Annotation(tags=dict((record or {}).get("tags") or {})) for name, record in runs}


def can_annotate() -> bool:
    """Whether tags and notes can be changed after a run ends."""
    return False


def set_tags(repo: Repo, name: str, tags: Mapping[str, str], delete: Sequence[str]) -> None:
    raise StateError("tags cannot be changed after a run ends in this version of gitexp")


def set_note(repo: Repo, name: str, text: str) -> None:
    raise StateError("notes cannot be added after a run ends in this version of gitexp")
