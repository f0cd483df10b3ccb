"""The `gitexp` command group and what its commands share: output options, the repository
(recovered from a cut-off operation on open), warnings and progress lines."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from gitexp import __version__

FORMAT_HELP = {"json": "Print JSON.", "csv": "Print CSV.", "md": "Print a Markdown table."}


def warn(message: str) -> None:
    click.echo(f"gitexp: warning: {message}", err=True)


def output_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--json, --csv, --md and --precision, shared by every listing command."""
    for fmt in reversed(FORMAT_HELP):
        func = click.option(f"--{fmt}", "fmt", flag_value=fmt, help=FORMAT_HELP[fmt])(func)
    func = click.option(
        "--precision",
        type=click.IntRange(1, 17),
        default=6,
        show_default=True,
        help="Significant digits of numbers in tables.",
    )(func)
    return func


def open_repo() -> Any:
    from gitexp.store.git import Repo
    from gitexp.store.journal import recover

    repo = Repo.discover(".")
    for notice in recover(repo):
        warn(notice)
    return repo


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gitexp")
@click.option(
    "-C",
    "cwd",
    type=click.Path(file_okay=False, exists=True),
    help="Run as if gitexp was started in this directory.",
)
def cli(cwd: str | None) -> None:
    """Git-native experiment versioning: every run is a git commit on refs/runs/NAME.

    \b
    gitexp run -S train.lr=0.1 -- python train.py   run and record an experiment
    gitexp show                                       list runs with params and metrics
    gitexp diff main my-run                           compare any two runs or revisions
    """
    if cwd:  # as `git -C`: everything, the user's command included, starts there
        os.chdir(cwd)


def progress(message: str) -> None:
    click.echo(f"gitexp: {message}", err=True)
