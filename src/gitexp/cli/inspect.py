"""Reading runs: `show`, `diff`, `log`, and `remove`."""

from __future__ import annotations

import click

from gitexp.cli.app import cli, complete_runs, open_repo, output_options, progress, warn
from gitexp.errors import UsageError


@cli.command()
@click.argument("revs", nargs=-1, shell_complete=complete_runs)
@click.option("--sort-by", metavar="KEY", help="Sort by a param, metric or column.")
@click.option("--desc", is_flag=True, help="Sort in descending order.")
@click.option("--filter", "filter_expr", metavar="EXPR", help='e.g. "acc > 0.9 and lr < 0.1"')
@click.option("--only-changed", is_flag=True, help="Hide columns equal in every row.")
@click.option("--limit", type=click.IntRange(min=1), help="Show at most N rows.")
@click.option("--columns", "keep", multiple=True, metavar="GLOB", help="Show only these keys.")
@click.option("--drop", multiple=True, metavar="GLOB", help="Hide these keys.")
@click.option("--params-only", is_flag=True, help="Show params, not metrics.")
@click.option("--metrics-only", is_flag=True, help="Show metrics, not params.")
@output_options
def show(
    revs: tuple[str, ...],
    sort_by: str | None,
    desc: bool,
    filter_expr: str | None,
    only_changed: bool,
    limit: int | None,
    keep: tuple[str, ...],
    drop: tuple[str, ...],
    params_only: bool,
    metrics_only: bool,
    fmt: str | None,
    precision: int,
) -> None:
    """List runs (or the given runs and revisions) with their params and metrics."""
    from gitexp.cli.views import show_output
    from gitexp.store.listing import all_json, show_entries

    kinds = _kinds(params_only, metrics_only)
    plain = not (revs or filter_expr or sort_by or only_changed or keep or drop)
    if fmt == "json" and plain:  # the index's text as it is: 100,000 runs in seconds
        text, errors = all_json(open_repo(), limit)
        for error in errors:
            warn(error)
        click.echo(text)
        return
    newest = limit if not (filter_expr or sort_by) else None  # the index reads just those
    entries, errors = show_entries(open_repo(), revs, newest)
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
            keep=keep,
            drop=drop,
            kinds=kinds,
        )
    )


def _kinds(params_only: bool, metrics_only: bool) -> tuple[str, ...]:
    if params_only and metrics_only:
        raise UsageError("--params-only and --metrics-only cannot be used together: pick one")
    return ("params",) if params_only else ("metrics",) if metrics_only else ("params", "metrics")


@cli.command()
@click.argument("a", required=False, shell_complete=complete_runs)
@click.argument("b", required=False, shell_complete=complete_runs)
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
@click.argument("run_name", metavar="RUN", shell_complete=complete_runs)
@output_options
def log(run_name: str, fmt: str | None, precision: int) -> None:
    """Show a run's record and the output its command printed."""
    from gitexp.cli.views import log_output

    click.echo(log_output(open_repo(), run_name, fmt or "table", precision), nl=False)


@cli.command()
@click.argument("runs", nargs=-1, metavar="RUN...", shell_complete=complete_runs)
@click.option("--filter", "filter_expr", metavar="EXPR", help="Remove the runs that match.")
@click.option("--remote", metavar="REMOTE", help="Remove them from REMOTE too (atomically).")
def remove(runs: tuple[str, ...], filter_expr: str | None, remote: str | None) -> None:
    """Delete runs (their refs under refs/runs/): names, globs such as 'sweep/*', or
    --filter. A later `pull` does not bring a removed run back."""
    from gitexp.workflows.manage import chosen
    from gitexp.workflows.manage import remove as remove_runs

    if not runs and not filter_expr:
        raise UsageError("name the runs to remove (names or globs such as 'sweep/*'), or --filter")
    repo = open_repo()
    picked = chosen(repo, runs, filter_expr)
    remove_runs(repo, picked, remote, progress)
    for name in picked:
        click.echo(f"removed run '{name}'" + (f" here and on {remote}" if remote else ""))
