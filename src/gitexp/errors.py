"""The errors gitexp shows to users: one line each, with a documented exit code.

Anything else that escapes a command is a bug and keeps its traceback.
"""

from __future__ import annotations

# Exit codes, documented in the README.
EXIT_USAGE = 2  # usage or validation error; nothing was written
EXIT_STATE = 3  # the repository's state refuses the operation
EXIT_IO = 4  # disk full, I/O error
EXIT_REMOTE = 5  # a remote refused or could not be reached


class GitexpError(Exception):
    """A problem the user can fix; printed as one line by the CLI."""

    exit_code = EXIT_USAGE


class UsageError(GitexpError):
    exit_code = EXIT_USAGE


class StateError(GitexpError):
    exit_code = EXIT_STATE


class StorageError(GitexpError):
    exit_code = EXIT_IO


class RemoteError(GitexpError):
    exit_code = EXIT_REMOTE


class Interrupted(GitexpError):
    """Ctrl-C before anything was started or written."""

    exit_code = 130
