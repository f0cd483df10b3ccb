"""Sharing runs: `push` and `pull`."""

from __future__ import annotations

import click

from gitexp.cli.app import cli, open_repo, progress, warn


@cli.command()
@click.argument("remote", required=False, default="origin")
@click.argument("runs", nargs=-1, metavar="[RUN]...")
@click.option("--all", "all_runs", is_flag=True, help="Push every run (the default).")
@click.option("--no-data", is_flag=True, help="Push refs only, not the data of the runs.")
@click.option(
    "--skip-existing", is_flag=True, help="Leave out runs whose names the remote has for others."
)
def push(
    remote: str, runs: tuple[str, ...], all_runs: bool, no_data: bool, skip_existing: bool
) -> None:
    """Push runs: their data to the DVC remote, then their refs (with their tags and notes)
    to REMOTE (default origin), in one atomic push that never overwrites a run there."""
    from gitexp.workflows.remote import push as push_runs

    repo = open_repo()
    result = push_runs(repo, remote, () if all_runs else runs, not no_data, progress,
                       skip_existing)  # fmt: skip
    for name in result.skipped:
        warn(f"left out run '{name}': {remote} has another run of that name")
    click.echo(
        f"pushed {len(result.runs)} new run(s) and {result.objects} data object(s); "
        f"{len(result.already)} already on {remote}"
    )


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
    if result.data_problem and result.without_data:
        warn(f"the data of {len(result.without_data)} run(s) was not fetched: "
             f"{result.data_problem}")  # fmt: skip
    for name, paths in result.without_data.items():
        why = "not fetched" if result.data_problem else "the DVC remote lacks it"
        warn(f"run '{name}' has no data here for {', '.join(paths)}: {why}")
    if result.removed_here:
        warn(f"left out {len(result.removed_here)} run(s) removed here "
             f"({', '.join(result.removed_here[:5])}); 'gitexp pull {remote} NAME' brings one "
             "back")  # fmt: skip
    click.echo(
        f"pulled {len(result.created)} new run(s), {len(result.unchanged)} already here, "
        f"{result.objects} data object(s)"
    )
