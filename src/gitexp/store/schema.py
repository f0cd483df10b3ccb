"""The run record's documented schema, checked where a record enters (a read, a pull).

A record from a teammate's or CI's remote is untrusted data (row S5): a record that does not
parse, is too large, or has a field of the wrong type is refused with a reason, and the code
past this point can trust the types it reads. Unknown fields are allowed, so records written
by a newer gitexp stay readable.
"""

from __future__ import annotations

import re
from typing import Any

from gitexp.core import yamlio
from gitexp.errors import UsageError

MAX_RECORD_BYTES = 10 * 1024 * 1024

_STR = (str,)
_OPT_STR = (str, type(None))
_NUMBER = (int, float)
_OPT_NUMBER = (int, float, type(None))
_OPT_INT = (int, type(None))

# field -> the types its value may have (bool is excluded from numbers below)
FIELDS: dict[str, tuple[type, ...]] = {
    "version": (int,),
    "name": _STR,
    "command": (list,),
    "status": _STR,
    "exit_code": _OPT_INT,
    "started": _STR,
    "ended": _OPT_STR,
    "duration": _OPT_NUMBER,
    "base": _STR,
    "branch": _OPT_STR,
    "author": _OPT_STR,
    "host": _OPT_STR,
    "python": _OPT_STR,
    "platform": _OPT_STR,
    "cpu": (dict, type(None)),
    "gpu": (list, type(None)),
    "packages": (dict, type(None)),
    "env": (dict, type(None)),
    "gitexp": _OPT_STR,
    "overrides": (list,),
    "outs": (list,),
    "tags": (dict,),
    "message": _OPT_STR,
    "reproduces": _OPT_STR,
    "params": (dict,),
    "metrics": (dict,),
    "errors": (dict,),
    "data": (dict,),
    "interrupted_by": _OPT_STR,
    "cwd": _OPT_STR,
    "parent": _OPT_STR,
    "inputs": _OPT_STR,
    "index": _OPT_STR,
    "carried": (dict, type(None)),
    "skipped": (list, type(None)),
    "experiment": _OPT_STR,
    # Written by the Python API (gitexp.tracking): MLflow's run name, where the run's
    # artifacts are, artifacts kept in place (MLflow path -> repository path), logged models
    # and datasets, and the run a resumed run continues.
    "run_name": _OPT_STR,
    "artifact_root": _OPT_STR,
    "artifacts": (dict, type(None)),
    "models": (dict, type(None)),
    "datasets": (list, type(None)),
    "resumes": _OPT_STR,
}
REQUIRED = ("status", "started")
_STRING_LISTS = ("command", "overrides", "outs", "skipped")
_STRING_MAPS = ("tags", "errors", "env", "packages", "artifacts")
_FILE_MAPS = ("params", "metrics", "data", "carried")
# Commits the record names, which gitexp hands to git: a full object id and nothing else, so
# a value like '--output=FILE' can never become an option (row S5).
_OBJECT_IDS = ("base", "inputs", "index")
_OBJECT_ID = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")


def problem(record: Any) -> str | None:
    """Why a parsed record breaks the schema, or None when it is fine."""
    if not isinstance(record, dict):
        return "it is not a JSON object"
    for field in REQUIRED:
        if field not in record:
            return f"'{field}' is missing"
    for field, types in FIELDS.items():
        if field not in record:
            continue
        value = record[field]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return f"'{field}' is {type(value).__name__}, not {_names(types)}"
    for field in _OBJECT_IDS:
        value = record.get(field)
        if value is not None and not _OBJECT_ID.fullmatch(value):
            return f"'{field}' is not a commit id"
    for field in _STRING_LISTS:
        if any(not isinstance(v, str) for v in record.get(field) or []):
            return f"'{field}' must be a list of strings"
    for field in _STRING_MAPS:
        if any(not isinstance(v, str) for v in (record.get(field) or {}).values()):
            return f"'{field}' must map names to strings"
    if any(not isinstance(v, dict) for v in record.get("datasets") or []):
        return "'datasets' must be a list of objects"
    for field in _FILE_MAPS:
        if any(not isinstance(v, dict) for v in (record.get(field) or {}).values()):
            return f"'{field}' must map each file to its values"
    return None


def _names(types: tuple[type, ...]) -> str:
    words = {str: "a string", int: "an integer", float: "a number", list: "a list",
             dict: "an object", type(None): "null"}  # fmt: skip
    return " or ".join(dict.fromkeys(words[t] for t in types))


def load_record(data: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """(record, None) for a valid record, (None, reason) otherwise."""
    if len(data) > MAX_RECORD_BYTES:
        return None, f"its record is {len(data):,} bytes, over the {MAX_RECORD_BYTES:,} limit"
    try:
        record = yamlio.load_json(data, "run.json")
    except UsageError as exc:
        return None, f"its record is not valid JSON ({str(exc).removeprefix('run.json')})"
    reason = problem(record)
    if reason:
        return None, f"its record is malformed: {reason}"
    return record, None
