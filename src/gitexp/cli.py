"""The `gitexp` command line: parse, call the core, render, map errors to exit codes.

Each command is a thin handler; the work is done in runs.py, snapshot.py, compare.py and
render.py. DVC is imported only by commands that handle data (`init` here).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import click

from gitexp import __version__
from gitexp.errors import EXIT_IO, GitexpError, UsageError

FORMAT_HELP = {"json": "Print JSON.", "csv": "Print CSV.", "md": "Print a Markdown table."}


def _warn(message: str) -> None:
    click.echo(f"gitexp: warning: {message}", err=True)


def output_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--json, --csv, --md and --precision, shared by every listing command."""
    for fmt in reversed(FORMAT_HELP):
        func = click.option(f"--{fmt}", "fmt", flag_value=fmt, help=FORMAT_HELP[fmt])(func)
    func = click.option(
        "--precision",
        type=click.IntRange(1, 17),
        default=6,
        show_default=True,
        help="Significant digits of numbers in tables.",
    )(func)
    return func


def _repo() -> Any:
    from gitexp.git import Repo
    from gitexp.journal import recover

    repo = Repo.discover(".")
    for notice in recover(repo):
        _warn(notice)
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


@cli.command()
def init() -> None:
    """Make the current git repository ready for gitexp (idempotent)."""
    from gitexp.setup import init_repository

    for line in init_repository(_repo()):
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
) -> None:
    """Run COMMAND and record it as a run (without COMMAND: `dvc repro` if dvc.yaml exists).

    The run is one commit on refs/runs/NAME whose parent is HEAD. Your branch, index, stash
    and uncommitted files are left as they are; -S overrides hold for this run only.
    """
    from gitexp.runs import RunRequest, run_experiment

    tag_map = {}
    for tag in tags:
        key, eq, value = tag.partition("=")
        if not eq:
            raise UsageError(f"invalid tag '{tag}': write KEY=VALUE")
        tag_map[key] = value
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
    outcome = run_experiment(_repo(), request, _warn)
    if outcome.commit:
        click.echo(
            f"gitexp: recorded run '{outcome.name}' ({outcome.status}) "
            f"as refs/runs/{outcome.name} {outcome.commit[:10]}",
            err=True,
        )
    else:
        click.echo(f"gitexp: run '{outcome.name}' {outcome.status}; not recorded", err=True)
    ctx.exit(outcome.exit_code)


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
    from gitexp.views import show_entries, show_output

    entries, errors = show_entries(_repo(), revs)
    for error in errors:
        _warn(error)
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
    from gitexp.views import diff_output, env_diff_output

    if env:
        if not (a and b):
            raise UsageError("--env compares two runs: gitexp diff --env RUN_A RUN_B")
        click.echo(env_diff_output(_repo(), a, b, fmt or "table", precision))
        return
    text = diff_output(
        _repo(), a or "HEAD", b or "workspace", show_all, fmt or "table", precision, _warn
    )
    click.echo(text)


@cli.command()
@click.argument("run_name", metavar="RUN")
@output_options
def log(run_name: str, fmt: str | None, precision: int) -> None:
    """Show a run's record and the output its command printed."""
    from gitexp.views import log_output

    click.echo(log_output(_repo(), run_name, fmt or "table", precision), nl=False)


@cli.command()
@click.argument("runs", nargs=-1, required=True, metavar="RUN...")
def remove(runs: tuple[str, ...]) -> None:
    """Delete runs (their refs under refs/runs/)."""
    from gitexp.runs import remove_runs

    for name in remove_runs(_repo(), runs):
        click.echo(f"removed run '{name}'")


@cli.command()
@click.argument("run_name", metavar="RUN")
@click.option("--force", is_flag=True, help="Save uncommitted changes as a run, then go ahead.")
def checkout(run_name: str, force: bool) -> None:
    """Make the workspace the run: HEAD detached at its commit, its data checked out."""
    from gitexp.workspace import checkout as checkout_run

    commit = checkout_run(_repo(), run_name, force, _warn)
    click.echo(f"HEAD is now at {commit[:10]} ({run_name}); 'git switch -' goes back")


@cli.command()
@click.argument("run_name", metavar="RUN")
@click.option("--force", is_flag=True, help="Save uncommitted changes as a run, then go ahead.")
def apply(run_name: str, force: bool) -> None:
    """Bring a run's code, params and data into the workspace as uncommitted changes."""
    from gitexp.workspace import apply as apply_run

    changed = apply_run(_repo(), run_name, force, _warn)
    click.echo(f"applied {run_name}: {len(changed)} file(s) changed; review them with 'git diff'")


@cli.command()
@click.argument("run_name", metavar="RUN")
@click.argument("branch_name", metavar="BRANCH")
def branch(run_name: str, branch_name: str) -> None:
    """Create BRANCH at the run (its code and params, without the run record)."""
    from gitexp.workspace import branch as branch_run

    commit = branch_run(_repo(), run_name, branch_name)
    click.echo(f"created branch '{branch_name}' at {commit[:10]}: git push -u origin {branch_name}")


@cli.command()
@click.argument("run_name", metavar="RUN")
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
    from gitexp.reproduce import reproduce as reproduce_run
    from gitexp.views import reproduce_output

    # With --json, stdout carries only the JSON: the command's own output goes to stderr.
    quiet = contextlib.redirect_stdout(sys.stderr) if fmt == "json" else contextlib.nullcontext()
    with quiet:
        result = reproduce_run(_repo(), run_name, tolerance, keep, _warn)
    click.echo(reproduce_output(result, fmt or "table", precision))
    sys.exit(0 if result.reproduced else 1)


@cli.command()
@click.argument("remote", required=False, default="origin")
@click.argument("runs", nargs=-1, metavar="[RUN]...")
@click.option("--all", "all_runs", is_flag=True, help="Push every run (the default).")
@click.option("--no-data", is_flag=True, help="Push refs only, not the data of the runs.")
def push(remote: str, runs: tuple[str, ...], all_runs: bool, no_data: bool) -> None:
    """Push runs: their data to the DVC remote, then their refs to REMOTE (default origin)."""
    from gitexp.remote import push as push_runs

    result = push_runs(_repo(), remote, () if all_runs else runs, not no_data, _progress)
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
    from gitexp.remote import pull as pull_runs

    result = pull_runs(_repo(), remote, () if all_runs else runs, not no_data, _progress)
    for name in result.conflicts:
        _warn(f"run '{name}' differs from {remote}'s; kept the local one")
    click.echo(
        f"pulled {len(result.created)} new run(s), {len(result.unchanged)} already here, "
        f"{result.objects} data object(s)"
    )


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
    from gitexp.views import report_output

    text, failed = report_output(_repo(), base, head, fmt, metric, checks)
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
    from gitexp.cigen import write_workflow

    repo = _repo()
    path = write_workflow(repo.root, kind, command, list(checks), install, force)
    click.echo(f"wrote {path.relative_to(repo.root)}: commit it to turn it on")


def _progress(message: str) -> None:
    click.echo(f"gitexp: {message}", err=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: user errors become one line on stderr and a documented exit code."""
    try:
        # Without standalone mode click returns ctx.exit()'s code instead of exiting.
        result = cli.main(args=argv, prog_name="gitexp", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (click.Abort, KeyboardInterrupt):  # a Ctrl-C outside a run's own handling
        return 130
    except GitexpError as exc:
        if os.environ.get("GITEXP_DEBUG"):
            traceback.print_exc()
        click.echo(f"gitexp: error: {exc}", err=True)
        return exc.exit_code
    except BrokenPipeError:  # `gitexp show | head`
        sys.stderr.close()
        return 1
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EIO, errno.EFBIG, errno.EDQUOT):
            click.echo(f"gitexp: error: {exc.strerror}", err=True)
            return EXIT_IO
        raise
