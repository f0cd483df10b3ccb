"""Reviewing a change: `report` and `ci`."""

from __future__ import annotations

import sys

import click

from gitexp.cli.app import cli, open_repo, output_options, progress, warn


@cli.command()
@click.option("--base", "base", metavar="REV", help="Default: merge base with the default branch.")
@click.option("--head", "head", metavar="REV", default="HEAD", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["md", "html"]), default="md", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to FILE.")
@click.option("--metric", metavar="KEY", help="Rank the branch's runs by this metric.")
@click.option(
    "--check",
    "checks",
    multiple=True,
    metavar="EXPR",
    help='A budget, e.g. "acc >= base.acc - 0.005"; a failed one makes report exit 1.',
)
@click.option(
    "--history",
    "history",
    metavar="RANGE",
    help="Chart the metrics of the runs recorded on the commits of RANGE (e.g. main~50..main).",
)
def report(
    base: str | None,
    head: str,
    fmt: str,
    output: str | None,
    metric: str | None,
    checks: tuple[str, ...],
    history: str | None,
) -> None:
    """A pull-request report: the verdict, metric and param changes, the branch's runs,
    plots. Exits 1 when a budget fails, 2 when the report cannot be built."""
    from gitexp.cli.views import history_output, report_output

    if history:
        if checks or base or head != "HEAD":
            from gitexp.errors import UsageError

            raise UsageError("--history charts a range: it takes no --base, --head or --check")
        text, failed = history_output(open_repo(), history, fmt, metric), False
    else:
        text, failed = report_output(open_repo(), base, head, fmt, metric, checks)
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)
    sys.exit(1 if failed else 0)


@cli.command(name="ci")
@click.argument("kind", type=click.Choice(["github", "gitlab"]))
@click.option("--run", "command", metavar="COMMAND", help="Also run this experiment in CI.")
@click.option("--check", "checks", multiple=True, metavar="EXPR", help="A budget to enforce.")
@click.option(
    "--install",
    default="pip install gitexp",
    show_default=True,
    help="The step that installs gitexp and the project.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing workflow file.")
def ci(kind: str, command: str | None, checks: tuple[str, ...], install: str, force: bool) -> None:
    """Write a CI workflow that posts the report on pull (merge) requests."""
    from gitexp.report.ci import write_workflow

    repo = open_repo()
    path = write_workflow(repo.root, kind, command, list(checks), install, force)
    click.echo(f"wrote {path.relative_to(repo.root)}: commit it to turn it on")


@cli.command(context_settings={"ignore_unknown_options": False})
@click.option("--metric", required=True, metavar="KEY", help="The metric that regressed.")
@click.option("--good", required=True, metavar="REV", help="A commit where the metric was good.")
@click.option(
    "--bad", default="HEAD", show_default=True, metavar="REV", help="A commit where it is bad."
)
@click.option(
    "--threshold",
    type=float,
    help="Worse than this is bad. Default: halfway between the good and bad values.",
)
@click.argument("command", nargs=-1, metavar="[-- COMMAND...]")
@output_options
def bisect(
    metric: str,
    good: str,
    bad: str,
    threshold: float | None,
    command: tuple[str, ...],
    fmt: str | None,
    precision: int,
) -> None:
    """Find the first commit between --good and --bad where METRIC regressed.

    Commits with a recorded run are judged by it; the others are run with COMMAND (like
    `git bisect run`) in a temporary worktree and recorded as runs. Your workspace is not
    touched.
    """
    import contextlib

    from gitexp.cli.views import bisect_output
    from gitexp.workflows.bisect import bisect as find_regression

    # The commands' own output goes to stderr: stdout carries the result alone.
    with contextlib.redirect_stdout(sys.stderr):
        result = find_regression(
            open_repo(), metric, good, bad, threshold, command or None, warn, progress
        )
    click.echo(bisect_output(result, fmt or "table", precision))
