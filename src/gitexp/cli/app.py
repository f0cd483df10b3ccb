"""The `gitexp` command group and what its commands share: output options, the repository
(recovered from a cut-off operation on open), warnings and progress lines."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any

import click
from click.shell_completion import CompletionItem

from gitexp import __version__
from gitexp.errors import UsageError

FORMAT_HELP = {"json": "Print JSON.", "csv": "Print CSV.", "md": "Print a Markdown table."}


def warn(message: str) -> None:
    click.echo(f"gitexp: warning: {message}", err=True)


def output_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--json, --csv, --md and --precision, shared by every listing command; the command
    gets `fmt` (None for a table). Two formats at once are a usage error."""

    command = func

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        chosen = [fmt for fmt in FORMAT_HELP if kwargs.pop(f"as_{fmt}")]
        if len(chosen) > 1:
            raise UsageError(f"--{' and --'.join(chosen)} cannot be used together: pick one")
        return command(*args, fmt=chosen[0] if chosen else None, **kwargs)

    func = wrapper
    for fmt in reversed(FORMAT_HELP):
        func = click.option(f"--{fmt}", f"as_{fmt}", is_flag=True, help=FORMAT_HELP[fmt])(func)
    func = click.option(
        "--precision",
        type=click.IntRange(1, 17),
        default=6,
        show_default=True,
        help="Significant digits of numbers in tables.",
    )(func)
    return func


def parse_tags(pairs: Sequence[str]) -> dict[str, str]:
    """KEY=VALUE arguments as a mapping; anything else is a usage error."""
    tags = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq:
            raise UsageError(f"invalid tag '{pair}': write KEY=VALUE")
        tags[key] = value
    return tags


def complete_runs(
    _ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Run names for shell completion (`_GITEXP_COMPLETE=bash_source gitexp`)."""
    from gitexp.core.names import RUNS_PREFIX
    from gitexp.store.git import Repo

    try:
        refs = Repo.discover(".").list_refs(RUNS_PREFIX)
    except Exception:  # noqa: BLE001 - completion never prints errors into a shell
        return []
    names = [ref[len(RUNS_PREFIX) :] for ref, _ in refs]
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


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
