"""Run names: the allowlist every name passes before it reaches git, and readable new names.

The allowlist is stricter than `git check-ref-format` (RELIABILITY rule 5, rows N1 to N8).
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Iterable

from gitexp.errors import UsageError

RUNS_PREFIX = "refs/runs/"
MAX_NAME_BYTES = 100
RESERVED_NAMES = {"head", "workspace", "fetch_head", "orig_head", "merge_head", "@"}
REF_NAMESPACES = {"refs", "heads", "tags", "remotes", "notes", "stash"}

_COMPONENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
_HEXISH = re.compile(r"^[0-9a-fA-F]{7,64}$")

_ADJECTIVES = (
    "agile", "bold", "brisk", "calm", "clear", "cool", "deft", "eager", "fair", "fast",
    "fine", "glad", "grand", "keen", "kind", "lucid", "mild", "neat", "noble", "plain",
    "prime", "quick", "quiet", "rapid", "sharp", "sleek", "smart", "solid", "steady", "swift",
    "tidy", "vivid", "warm", "wise", "young", "zesty",
)  # fmt: skip
_NOUNS = (
    "alpaca", "badger", "beaver", "bison", "crane", "dingo", "eagle", "egret", "falcon", "ferret",
    "gecko", "heron", "ibis", "jackal", "koala", "lemur", "lynx", "marten", "mole", "newt",
    "otter", "panda", "puffin", "quail", "raven", "robin", "seal", "shrew", "stoat", "swan",
    "tapir", "trout", "vole", "walrus", "wren", "yak",
)  # fmt: skip


def validate_name(raw: str) -> str:
    """The NFC form of a run name, or an error saying which rule it breaks."""
    name = unicodedata.normalize("NFC", raw)
    shown = name.encode("unicode_escape").decode("ascii")

    def invalid(rule: str) -> UsageError:
        return UsageError(f"invalid run name '{shown}': {rule}")

    if not name:
        raise invalid("it is empty")
    if name.startswith("-"):
        raise invalid("it must not begin with '-'")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise invalid(f"it is longer than {MAX_NAME_BYTES} bytes")
    if ".." in name:
        raise invalid("it must not contain '..'")
    for part in name.split("/"):
        if not part:
            raise invalid("it has an empty part between '/'")
        if part.startswith("."):
            raise invalid("no part may begin with '.'")
        if part.endswith((".lock", ".")):
            raise invalid("no part may end with '.' or '.lock'")
        if not _COMPONENT.match(part):
            raise invalid("use only letters A-Z and a-z, digits, '.', '_', '-', and '/'")
    if name.lower() in RESERVED_NAMES:
        raise invalid("it is a reserved word")
    if name.split("/")[0].lower() in REF_NAMESPACES:
        # `refs/heads/x` or `heads/x` would shadow the branch wherever a revision is named.
        raise invalid(f"it must not begin with '{name.split('/')[0]}/' (git's ref namespaces)")
    if _HEXISH.match(name):
        raise invalid("it looks like a commit id; add a letter that is not a-f")
    return name


class NameIndex:
    """The taken run names, looked up in constant time: checking each of 1,000 pulled names
    against 100,000 runs stays quick."""

    def __init__(self, names: Iterable[str], other_revisions: Iterable[str] = ()) -> None:
        self.by_lower: dict[str, str] = {}
        self.folders: dict[str, str] = {}  # 'a/b' -> a run under it, such as 'a/b/c'
        self.others = set(other_revisions)
        for name in names:
            self.add(name)

    def add(self, name: str) -> None:
        lower = name.lower()
        self.by_lower[lower] = name
        parts = lower.split("/")
        for depth in range(1, len(parts)):
            self.folders.setdefault("/".join(parts[:depth]), name)

    def check(self, name: str, fix: str = "choose another name with -n") -> None:
        """Refuses a name that exists, differs only by case, or would conflict as
        file/folder with another run, or is a branch or tag; `fix` says what to do."""
        lower = name.lower()
        other = self.by_lower.get(lower)
        if other is not None:
            what = "already exists" if other == name else f"differs only by case from '{other}'"
            raise UsageError(f"run '{name}' {what}: {fix}")
        parts = lower.split("/")
        clash = self.folders.get(lower) or next(
            (self.by_lower[p] for d in range(1, len(parts))
             if (p := "/".join(parts[:d])) in self.by_lower),
            None,
        )  # fmt: skip
        if clash is not None:
            raise UsageError(
                f"run '{clash}' exists; '{name}' would conflict with it: choose another name"
            )
        if name in self.others:
            raise UsageError(
                f"'{name}' is already a branch or tag; choose another run name so both stay "
                "reachable"
            )


def check_free(
    name: str,
    existing: Iterable[str],
    other_revisions: Iterable[str] = (),
    fix: str = "choose another name with -n",
) -> None:
    """Refuses a name that exists, differs only by case, or would conflict as file/folder."""
    NameIndex(existing, other_revisions).check(name, fix)


def generate_name(existing: Iterable[str]) -> str:
    """A readable unique name such as 'brisk-otter-3f2a'."""
    taken = {n.lower() for n in existing}
    while True:
        name = f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{secrets.token_hex(2)}"
        if name not in taken:
            return name
