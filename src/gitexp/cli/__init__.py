"""The `gitexp` command line: parse, call the core, render, map errors to exit codes.

One module per command group registers its commands on `cli` (app.py); the work is
done in the library. DVC is imported only by commands that handle data.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback
from collections.abc import Sequence

import click

from gitexp.cli import inspect, manage, model, report, run, sharing, sweep, ui, workspace  # noqa: F401
from gitexp.cli.app import cli
from gitexp.errors import EXIT_IO, GitexpError


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: user errors become one line on stderr and a documented exit code."""
    try:
        # Without standalone mode click returns ctx.exit()'s code instead of exiting.
        result = cli.main(args=argv, prog_name="gitexp", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:  # one line, as gitexp's own errors are
        where = exc.ctx.command_path if exc.ctx else "gitexp"
        click.echo(f"gitexp: error: {exc.format_message()} (see '{where} --help')", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (click.Abort, KeyboardInterrupt):  # a Ctrl-C outside a run's own handling
        return 130
    except GitexpError as exc:
        if os.environ.get("GITEXP_DEBUG"):
            traceback.print_exc()
        click.echo(f"gitexp: error: {exc}", err=True)
        return exc.exit_code
    except BrokenPipeError:  # `gitexp show | head`
        sys.stderr.close()
        return 1
    except OSError as exc:
        if exc.errno in _IO_ERRORS:  # row S11: one line, exit 4, never a traceback
            if os.environ.get("GITEXP_DEBUG"):
                traceback.print_exc()
            where = f" ({exc.filename})" if exc.filename else ""
            click.echo(f"gitexp: error: {exc.strerror}{where}", err=True)
            return EXIT_IO
        raise


# Disk full, quota, read-only or unwritable git directory, I/O errors.
_IO_ERRORS = (errno.ENOSPC, errno.EIO, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EACCES,
              errno.EPERM)  # fmt: skip
