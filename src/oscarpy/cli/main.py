"""Entry point of the `oscar` command: the Typer application and its error handling."""

from __future__ import annotations

import sys

import typer

from oscarpy import __version__
from oscarpy.cli.exit_codes import EXIT_INTERRUPTED
from oscarpy.cli.serve import serve

app = typer.Typer(
    name="oscar",
    help="oscar-py: drop files in, get results out. Serverless file processing in containers.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
app.command()(serve)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"oscar-py {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """oscar-py: drop files in, get results out."""


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
