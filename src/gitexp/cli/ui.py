"""`gitexp ui`: browse, compare and inspect runs in a local web app."""

from __future__ import annotations

import click

from gitexp.cli.app import cli, open_repo


@cli.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=5000,
    show_default=True,
    help="Port to listen on (0: any free port).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Anything but 127.0.0.1 lets other machines in.",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a web browser.")
@click.option(
    "--write",
    is_flag=True,
    help="Allow the page to remove runs and change their tags and notes.",
)
def ui(port: int, host: str, open_browser: bool, write: bool) -> None:
    """Serve a web app to browse, compare and inspect this repository's runs.

    It reads refs and run records as `show` does and writes nothing unless --write is given.
    Runs that land while the page is open appear on their own; runs in progress show their
    metrics and output as they go.
    """
    from gitexp.ui.server import serve

    serve(open_repo(), host, port, write=write, open_browser=open_browser, echo=click.echo)
