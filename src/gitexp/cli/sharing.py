"""Sharing runs: `push` and `pull`."""

from __future__ import annotations

import click

from gitexp.cli.app import cli, open_repo, progress, warn


@cli.command()
@click.argument("remote", required=False, default="origin")
@click.argument("runs", nargs=-1, metavar="[RUN]...")
@click.option("--all", "all_runs", is_flag=True, help="Push every run (the default).")
@click.option("--no-data", is_flag=True, help="Push refs only, not the data of the runs.")
def push(remote: str, runs: tuple[str, ...], all_runs: bool, no_data: bool) -> None:
    """Push runs: their data to the DVC remote, then their refs to REMOTE (default origin)."""
    from gitexp.workflows.remote import push as push_runs

    result = push_runs(open_repo(), remote, () if all_runs else runs, not no_data, progress)
    click.echo(f"pushed {len(result.runs)} run(s) and {result.objects} data object(s)")


@cli.command()
@click.argument("remote", required=False, default="origin")
@click.argument("runs", nargs=-1, metavar="[RUN]...")
@click.option("--all", "all_runs", is_flag=True, help="Pull every run (the default).")
@click.option("--no-data", is_flag=True, help="Fetch refs only, not the data of the runs.")
def pull(remote: str, runs: tuple[str, ...], all_runs: bool, no_data: bool) -> None:
    """Fetch runs from REMOTE (default origin) and their data from the DVC remote.

    A local run is never overwritten: a run of the same name that differs is reported.
    """
    from gitexp.workflows.remote import pull as pull_runs

    result = pull_runs(open_repo(), remote, () if all_runs else runs, not no_data, progress)
    for name in result.conflicts:
        warn(f"run '{name}' differs from {remote}'s; kept the local one")
    for name, reason in result.skipped.items():
        shown = name.encode("unicode_escape").decode("ascii")
        warn(f"skipped {remote}'s run '{shown}': {reason}")
    for name, paths in result.without_data.items():
        warn(f"run '{name}' has no data here for {', '.join(paths)}: the DVC remote lacks it")
    click.echo(
        f"pulled {len(result.created)} new run(s), {len(result.unchanged)} already here, "
        f"{result.objects} data object(s)"
    )
