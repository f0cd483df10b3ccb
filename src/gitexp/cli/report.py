"""Reviewing a change: `report` and `ci`."""

from __future__ import annotations

import sys

import click

from gitexp.cli.app import cli, open_repo


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
def report(
    base: str | None,
    head: str,
    fmt: str,
    output: str | None,
    metric: str | None,
    checks: tuple[str, ...],
) -> None:
    """A pull-request report: metric and param changes, the branch's runs, plots."""
    from gitexp.cli.views import report_output

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
