"""`gitexp init`, `gitexp run` and `gitexp import-dvc`."""

from __future__ import annotations

import signal
from typing import Any

import click

from gitexp.cli.app import cli, open_repo, parse_tags, warn
from gitexp.cli.sweep import run_sweep_command, sweep_options, wants_sweep


@cli.command()
def init() -> None:
    """Make the current git repository ready for gitexp (idempotent)."""
    from gitexp.dvc.setup import init_repository

    for line in init_repository(open_repo()):
        click.echo(line)


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("-n", "--name", help="Name of the run (default: a generated one).")
@click.option(
    "-S",
    "--set-param",
    "overrides",
    multiple=True,
    metavar="[+][FILE:]KEY=VALUE",
    help="Set a param for this run only; '+KEY' adds a new key.",
)
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Tag the run.")
@click.option("-m", "--message", help="A description kept in the run's commit message.")
@click.option(
    "--out",
    "outs",
    multiple=True,
    metavar="PATH",
    help="An artifact the command writes (a model, generated data): stored by DVC, "
    "with its pointer file in the run.",
)
@click.option(
    "--no-record-failed",
    is_flag=True,
    help="Do not record the run when the command fails or is interrupted.",
)
@sweep_options
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def run(
    ctx: click.Context,
    name: str | None,
    overrides: tuple[str, ...],
    tags: tuple[str, ...],
    message: str | None,
    no_record_failed: bool,
    outs: tuple[str, ...],
    command: tuple[str, ...],
    **sweep: Any,
) -> None:
    """Run COMMAND and record it as a run (without COMMAND: `dvc repro` if dvc.yaml exists).

    The run is one commit on refs/runs/NAME whose parent is HEAD. Your branch, index, stash
    and uncommitted files are left as they are; -S overrides hold for this run only.

    A sweep: -S 'train.lr=0.001,0.01', 'KEY=range(2,8,2)' or 'KEY=choice(a,b)' (several -S
    make the product) runs one run per point, named NAME/lr-0.01, -j N at once.
    """
    from gitexp.workflows.run import RunRequest, run_experiment

    tag_map = parse_tags(tags)
    if wants_sweep(overrides, sweep):
        ctx.exit(run_sweep_command(command, name, overrides, tag_map, message,
                                   not no_record_failed, outs, sweep))  # fmt: skip
    request = RunRequest(
        command=command,
        name=name,
        overrides=overrides,
        tags=tag_map,
        message=message,
        record_failed=not no_record_failed,
        outs=outs,
    )
    # Once the run has been recorded, gitexp only reports and exits: a late second Ctrl-C must
    # not turn the exit code into a crash. The run installs its own handlers meanwhile.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    outcome = run_experiment(open_repo(), request, warn)
    if outcome.commit:
        click.echo(
            f"gitexp: recorded run '{outcome.name}' ({outcome.status}) "
            f"as refs/runs/{outcome.name} {outcome.commit[:10]}",
            err=True,
        )
    else:
        click.echo(f"gitexp: run '{outcome.name}' {outcome.status}; not recorded", err=True)
    ctx.exit(outcome.exit_code)


@cli.command(name="import-dvc")
@click.argument("names", nargs=-1, metavar="[EXPERIMENT]...")
@click.option("--prefix", default="", help="Put this before each run name (e.g. 'dvc/').")
def import_dvc(names: tuple[str, ...], prefix: str) -> None:
    """Copy DVC experiments (refs/exps/) to runs (refs/runs/) with run records.

    Without EXPERIMENT, all of them. The experiments stay where they are for DVC.
    """
    from gitexp.workflows.dvc_import import import_experiments

    result = import_experiments(open_repo(), names, prefix)
    for experiment, reason in result.skipped.items():
        warn(f"skipped DVC experiment '{experiment}': {reason}")
    for run_name, experiment in result.created.items():
        click.echo(f"imported DVC experiment '{experiment}' as run '{run_name}'")
    if not result.created and not result.skipped:
        click.echo("no DVC experiments to import")
