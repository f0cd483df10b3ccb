"""Returning to a run: `checkout`, `apply`, `branch`, `reproduce`."""

from __future__ import annotations

import contextlib
import sys

import click

from gitexp.cli.app import cli, complete_runs, open_repo, output_options, progress, warn


@cli.command()
@click.argument("run_name", metavar="RUN", shell_complete=complete_runs)
@click.option("--force", is_flag=True, help="Save uncommitted changes as a run, then go ahead.")
def checkout(run_name: str, force: bool) -> None:
    """Make the workspace the run: HEAD detached at its commit, its data checked out."""
    from gitexp.workflows.workspace import checkout as checkout_run

    commit = checkout_run(open_repo(), run_name, force, warn)
    click.echo(f"HEAD is now at {commit[:10]} ({run_name}); 'git switch -' goes back")


@cli.command()
@click.argument("run_name", metavar="RUN", shell_complete=complete_runs)
@click.option("--force", is_flag=True, help="Save uncommitted changes as a run, then go ahead.")
@click.option(
    "--whole", is_flag=True, help="Make the files equal to the run's instead of merging its change."
)
def apply(run_name: str, force: bool, whole: bool) -> None:
    """Bring a run's change (code, params, data) onto HEAD as uncommitted changes.

    The change the run made to its base is merged into your files, like `git cherry-pick
    --no-commit`; conflicts are listed and nothing is written.
    """
    from gitexp.workflows.workspace import apply as apply_run

    changed = apply_run(open_repo(), run_name, force, warn, whole=whole)
    click.echo(f"applied {run_name}: {len(changed)} file(s) changed; review them with 'git diff'")


@cli.command()
@click.argument("run_name", metavar="RUN", shell_complete=complete_runs)
@click.argument("branch_name", metavar="BRANCH")
def branch(run_name: str, branch_name: str) -> None:
    """Create BRANCH at the run (its code and params, without the run record)."""
    from gitexp.workflows.workspace import branch as branch_run

    commit = branch_run(open_repo(), run_name, branch_name)
    click.echo(f"created branch '{branch_name}' at {commit[:10]}: git push -u origin {branch_name}")


@cli.command()
@click.argument("run_name", metavar="RUN", shell_complete=complete_runs)
@click.option(
    "--tolerance",
    type=float,
    default=0.0,
    show_default=True,
    help="Largest relative difference of a metric that still counts as the same.",
)
@click.option("--keep", is_flag=True, help="Keep the worktree the run was repeated in.")
@output_options
def reproduce(run_name: str, tolerance: float, keep: bool, fmt: str | None, precision: int) -> None:
    """Re-run RUN in a separate worktree of its commit and compare its metrics.

    Exits 0 when every metric matches (within --tolerance), 1 when they differ.
    """
    from gitexp.cli.views import reproduce_output
    from gitexp.workflows.reproduce import reproduce as reproduce_run

    # With --json, stdout carries only the JSON: the command's own output goes to stderr.
    quiet = contextlib.redirect_stdout(sys.stderr) if fmt == "json" else contextlib.nullcontext()
    with quiet:
        result = reproduce_run(open_repo(), run_name, tolerance, keep, warn, progress)
    click.echo(reproduce_output(result, fmt or "table", precision))
    sys.exit(0 if result.reproduced else 1)
