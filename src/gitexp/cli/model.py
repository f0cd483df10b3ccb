"""`gitexp model`: the model registry on git tags (GTO's format, which `gto` reads too)."""

from __future__ import annotations

from typing import Any

import click

from gitexp.cli.app import cli, open_repo, output_options


@cli.group()
def model() -> None:
    """Register model versions and assign stages, as git tags in GTO's format.

    \b
    gitexp model register iris my-run        iris@v0.0.1 on the run's commit
    gitexp model assign iris prod            iris#prod#N on the latest version
    gitexp model list                        models, latest versions and stages
    """


def _commit(repo: Any, source: str) -> str:
    from gitexp.tracking.registry import commit_of_uri

    return commit_of_uri(repo, source)[0]


def _version_of(repo: Any, name: str, version: str | None, source: str | None) -> Any:
    """The version named by --version, by a run or revision, or the latest one."""
    from gitexp.errors import UsageError
    from gitexp.tracking import registry

    state = registry.load(repo, name)
    if version is not None:
        _, found = registry.resolve(repo, name, version)
        return found
    if source is not None:
        commit = _commit(repo, source)
        found = state.find(commit=commit)
        if found is None or not found.registered:
            raise UsageError(f"'{name}' has no version at {source}: register it first")
        return found
    found = state.latest()
    if found is None:
        raise UsageError(f"no model named '{name}': register a version first")
    return found


@model.command()
@click.argument("name")
@click.argument("source", default="HEAD", metavar="[RUN|REV|runs:/RUN/PATH]")
@click.option("--version", help="The version to register (v1.2.3); default: the latest bumped.")
@click.option(
    "--bump",
    type=click.Choice(["major", "minor", "patch"]),
    default="patch",
    show_default=True,
    help="Which part of the latest version to bump.",
)
@click.option("-m", "--message", help="The tag message (default: GTO's).")
def register(name: str, source: str, version: str | None, bump: str, message: str | None) -> None:
    """Register a new version of model NAME at a run (or any git revision)."""
    from gitexp.tracking import registry

    repo = open_repo()
    registry.check_name(name)
    found = registry.register(repo, name, _commit(repo, source), version, bump, message)
    state = registry.load(repo, name)
    click.echo(
        f"registered {name} {found.version} (version {state.number_of(found)}) at "
        f"{found.commit[:10]}: git tag {name}@{found.version}"
    )


@model.command()
@click.argument("name")
@click.argument("stage")
@click.argument("source", required=False, metavar="[RUN|REV]")
@click.option("--version", help="The version (v1.2.3, or MLflow's number); default: latest.")
@click.option("--move", is_flag=True, help="Unassign the stage from the version that has it.")
def assign(name: str, stage: str, source: str | None, version: str | None, move: bool) -> None:
    """Assign STAGE (an MLflow alias) to a version of model NAME."""
    from gitexp.tracking import registry

    repo = open_repo()
    found = _version_of(repo, name, version, source)
    tag = registry.assign(repo, name, stage, found, exclusive=move)
    if not tag:
        click.echo(f"{name} {found.version} is in stage '{stage}' already")
        return
    click.echo(f"assigned stage '{stage}' to {name} {found.version}: git tag {tag}")


@model.command()
@click.argument("name")
@click.argument("stage")
@click.option("--version", help="The version to unassign; default: the one in the stage.")
def unassign(name: str, stage: str, version: str | None) -> None:
    """Unassign STAGE from model NAME."""
    from gitexp.tracking import registry

    repo = open_repo()
    found = _version_of(repo, name, version, None) if version else None
    tag = registry.unassign(repo, name, stage, found)
    click.echo(f"unassigned stage '{stage}' of {name}: git tag {tag}")


@model.command()
@click.argument("name")
@click.argument("version")
def deregister(name: str, version: str) -> None:
    """Deregister VERSION (v1.2.3, or MLflow's number) of model NAME."""
    from gitexp.tracking import registry

    repo = open_repo()
    found = _version_of(repo, name, version, None)
    registry.deregister(repo, name, found.version)
    click.echo(f"deregistered {name} {found.version}: git tag {name}@{found.version}!")


@model.command()
@click.argument("name")
def deprecate(name: str) -> None:
    """Deprecate model NAME (GTO's NAME@deprecated)."""
    from gitexp.tracking import registry

    tag = registry.deprecate(open_repo(), name)
    click.echo(f"deprecated {name}: git tag {tag}")


@model.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include deprecated models.")
@output_options
def list_models(show_all: bool, fmt: str | None, precision: int) -> None:
    """Models with their latest version and the version in each stage."""
    from gitexp.core.render import render_rows
    from gitexp.tracking import registry

    repo = open_repo()
    models = [m for m in registry.load_all(repo) if show_all or not m.deprecated]
    stages = sorted(registry._configured_stages(repo) or {s for m in models for s in m.stages()})
    headers = ["name", "latest", "versions", *(f"#{s}" for s in stages)]
    rows, data = [], []
    for state in models:
        latest = state.latest()
        held = state.stages()
        rows.append(
            [
                state.name,
                latest.version if latest else None,
                len(state.registered()),
                *(held[s].version if s in held else None for s in stages),
            ]
        )
        data.append(
            {
                "name": state.name,
                "latest": latest.version if latest else None,
                "versions": len(state.registered()),
                "deprecated": state.deprecated,
                "stages": {s: v.version for s, v in held.items()},
            }
        )
    if not rows and fmt is None:
        click.echo("no models: register one with 'gitexp model register NAME RUN'")
        return
    click.echo(render_rows(headers, rows, fmt or "table", precision, json_data=data))


@model.command()
@click.argument("name")
@output_options
def show(name: str, fmt: str | None, precision: int) -> None:
    """The versions of model NAME: MLflow's number, the run, the stages they hold."""
    from gitexp.core.render import render_rows
    from gitexp.errors import UsageError
    from gitexp.store.records import iso_time
    from gitexp.tracking import registry

    repo = open_repo()
    state = registry.load(repo, name)
    if not state.events:
        raise UsageError(f"no model named '{name}': see 'gitexp model list'")
    runs = registry._runs_by_commit(repo)
    held = state.stages()
    headers = ["version", "number", "run", "commit", "stages", "registered", "active"]
    rows = []
    for number, version in enumerate(state.numbered(), 1):
        stages = [s for s, v in held.items() if v is version]
        first = min(e.time for e in version.registrations)
        rows.append(
            [
                version.version,
                number,
                runs.get(version.commit),
                version.commit[:10],
                ", ".join(sorted(stages)) or None,
                iso_time(first)[:19].replace("T", " "),
                version.active,
            ]
        )
    rows.reverse()
    data = [dict(zip(headers, row, strict=True)) for row in rows]
    click.echo(render_rows(headers, rows, fmt or "table", precision, json_data=data))
