"""Managing runs after they ended: `rename`, `tag` and `note`."""

from __future__ import annotations

import click

from gitexp.cli.app import cli, complete_runs, open_repo, parse_tags
from gitexp.errors import UsageError


@cli.command()
@click.argument("old", metavar="RUN", shell_complete=complete_runs)
@click.argument("new", metavar="NEW_NAME")
def rename(old: str, new: str) -> None:
    """Rename a run (its ref moves; its commit, tags and notes stay)."""
    from gitexp.workflows.manage import rename as rename_run

    rename_run(open_repo(), old, new)
    click.echo(f"renamed run '{old}' to '{new}'")


@cli.command()
@click.argument("run_name", metavar="RUN", shell_complete=complete_runs)
@click.argument("pairs", nargs=-1, metavar="KEY=VALUE...")
@click.option("--delete", "deleted", multiple=True, metavar="KEY", help="Remove this tag.")
def tag(run_name: str, pairs: tuple[str, ...], deleted: tuple[str, ...]) -> None:
    """Set or remove tags of a run after it ended (kept in git notes; push and pull carry
    them)."""
    from gitexp.workflows.manage import tag as tag_run

    tags = parse_tags(pairs)
    if not tags and not deleted:
        raise UsageError("give tags to set (KEY=VALUE) or --delete KEY")
    now = tag_run(open_repo(), run_name, tags, deleted)
    shown = ", ".join(f"{k}={v}" for k, v in now.items()) or "none"
    click.echo(f"tags of run '{run_name}': {shown}")


@cli.command()
@click.argument("run_name", metavar="RUN", shell_complete=complete_runs)
@click.argument("text", required=False)
@click.option("--delete", is_flag=True, help="Remove the run's note.")
def note(run_name: str, text: str | None, delete: bool) -> None:
    """Write a note on a run after it ended (shown as its message; push and pull carry it)."""
    from gitexp.workflows.manage import note as note_run

    if bool(text) == delete:
        raise UsageError("give the note's TEXT, or --delete to remove it")
    note_run(open_repo(), run_name, None if delete else text)
    click.echo(f"{'removed the note of' if delete else 'noted'} run '{run_name}'")
