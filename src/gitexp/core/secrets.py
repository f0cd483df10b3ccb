"""What looks like a secret, in one place: environment variable names whose values never
enter a record or a log, and param keys that are masked wherever runs are shown (rows X1-X3,
S10)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

SECRET_NAME = re.compile(
    r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|AUTH|PRIVATE|SESSION|COOKIE)", re.I
)
# Param keys: judged by their last part, so `max_tokens` or `tokenizer` stay visible while
# `hf_token`, `api_key` and `client_secret` are masked.
SECRET_PARAM = re.compile(
    r"(?:^|[_-])(?:api[_-]?key|access[_-]?key|private[_-]?key|secret(?:[_-]?key)?|token"
    r"|password|passwd|passphrase|credentials?|auth)$",
    re.I,
)
MASK = "***"
# Shorter values are not redacted from logs: replacing every "1" or "yes" would garble them.
MIN_REDACTED_LENGTH = 6


def looks_secret(name: str) -> bool:
    """An environment variable name that may hold a secret."""
    return bool(SECRET_NAME.search(name))


def secret_param(key: str) -> bool:
    """A param key (dotted) whose value looks like a secret."""
    return bool(SECRET_PARAM.search(key.rsplit(".", 1)[-1]))


def masked(flat: Mapping[str, Any]) -> dict[str, Any]:
    """A flat params mapping with the values of secret-looking keys replaced by ***."""
    return {k: (MASK if secret_param(k) else v) for k, v in flat.items()}


def secret_values(environ: Mapping[str, str]) -> list[bytes]:
    """The values of secret-looking environment variables, longest first (so a value that
    contains another is replaced whole)."""
    values = {
        value.encode("utf-8", "surrogateescape")
        for name, value in environ.items()
        if looks_secret(name) and len(value) >= MIN_REDACTED_LENGTH
    }
    return sorted(values, key=len, reverse=True)


def redact(data: bytes, values: Iterable[bytes]) -> bytes:
    for value in values:
        data = data.replace(value, MASK.encode())
    return data


def redact_text(text: str) -> str:
    """A string with the values of this process's secret-looking variables masked."""
    raw = text.encode("utf-8", "surrogateescape")
    return redact(raw, secret_values(os.environ)).decode("utf-8", "surrogateescape")
