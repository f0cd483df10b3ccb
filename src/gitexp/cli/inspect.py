"""Reading runs: `show`, `diff`, `log`, and `remove`."""

from __future__ import annotations

import click

from gitexp.cli.app import cli, open_repo, output_options, warn
from gitexp.errors import UsageError


@cli.command()
@click.argument("revs", nargs=-1)
@click.option("--sort-by", metavar="KEY", help="Sort by a param, metric or column.")
@click.option("--desc", is_flag=True, help="Sort in descending order.")
@click.option("--filter", "filter_expr", metavar="EXPR", help='e.g. "acc > 0.9 and lr < 0.1"')
@click.option("--only-changed", is_flag=True, help="Hide columns equal in every row.")
@click.option("--limit", type=click.IntRange(min=0), help="Show at most N rows.")
@output_options
def show(
    revs: tuple[str, ...],
    sort_by: str | None,
    desc: bool,
    filter_expr: str | None,
    only_changed: bool,
    limit: int | None,
    fmt: str | None,
    precision: int,
) -> None:
    """List runs (or the given runs and revisions) with their params and metrics."""
    from gitexp.cli.views import show_output
    from gitexp.store.listing import show_entries

    entries, errors = show_entries(open_repo(), revs)
    for error in errors:
        warn(error)
    click.echo(
        show_output(
            entries,
            fmt=fmt or "table",
            precision=precision,
            filter_expr=filter_expr,
            sort_by=sort_by,
            descending=desc,
            limit=limit,
            only_changed=only_changed,
        )
    )


@cli.command()
@click.argument("a", required=False)
@click.argument("b", required=False)
@click.option("--all", "show_all", is_flag=True, help="Also list keys that did not change.")
@click.option("--env", "env", is_flag=True, help="Compare the runs' environments instead.")
@output_options
def diff(
    a: str | None,
    b: str | None,
    show_all: bool,
    env: bool,
    fmt: str | None,
    precision: int,
) -> None:
    """Compare params and metrics of A and B: runs, git revisions or `workspace`.

    A defaults to HEAD and B to the workspace.
    """
    from gitexp.cli.views import diff_output, env_diff_output

    if env:
        if not (a and b):
            raise UsageError("--env compares two runs: gitexp diff --env RUN_A RUN_B")
        click.echo(env_diff_output(open_repo(), a, b, fmt or "table", precision))
        return
    text = diff_output(
        open_repo(), a or "HEAD", b or "workspace", show_all, fmt or "table", precision, warn
    )
    click.echo(text)


@cli.command()
@click.argument("run_name", metavar="RUN")
@output_options
def log(run_name: str, fmt: str | None, precision: int) -> None:
    """Show a run's record and the output its command printed."""
    from gitexp.cli.views import log_output

    click.echo(log_output(open_repo(), run_name, fmt or "table", precision), nl=False)


@cli.command()
@click.argument("runs", nargs=-1, required=True, metavar="RUN...")
def remove(runs: tuple[str, ...]) -> None:
    """Delete runs (their refs under refs/runs/)."""
    from gitexp.store.records import remove_runs

    for name in remove_runs(open_repo(), runs):
        click.echo(f"removed run '{name}'")
