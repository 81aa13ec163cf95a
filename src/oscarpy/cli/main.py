"""Entry point of the `oscar` command: the Typer application and its error handling.

Every command module imports its heavy libraries (httpx, boto3, rich, yaml) inside the
command, so that `oscar --help` and `oscar serve` start fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from oscarpy import __version__
from oscarpy.cli.apply import register as register_apply_commands
from oscarpy.cli.buckets import bucket_app
from oscarpy.cli.cluster_commands import cluster_app
from oscarpy.cli.context import OPTIONS, aliases
from oscarpy.cli.exit_codes import EXIT_INTERRUPTED
from oscarpy.cli.files import register as register_file_commands
from oscarpy.cli.logs import logs_app
from oscarpy.cli.serve import serve
from oscarpy.cli.services import service_app

app = typer.Typer(
    name="oscar",
    help="oscar-py: drop files in, get results out. Serverless file processing in containers.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(serve)
register_apply_commands(app)
app.add_typer(cluster_app)
app.add_typer(service_app)
app.add_typer(bucket_app)
service_app.add_typer(logs_app)
register_file_commands(service_app)
# oscar-cli's other names for the command groups.
app.add_typer(cluster_app, name="c", hidden=True)
app.add_typer(bucket_app, name="b", hidden=True)
for _alias in ("services", "svc", "s"):
    app.add_typer(service_app, name=_alias, hidden=True)
for _alias in ("log", "l"):
    service_app.add_typer(logs_app, name=_alias, hidden=True)


@app.command("version")
def version() -> None:
    """Print the version (as `oscar --version`)."""
    typer.echo(f"oscar-py {__version__}")


aliases(app, version, "v")


def _version(value: bool) -> None:
    if value:
        version()
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(
        False, "--debug", envvar="OSCAR_DEBUG", help="Show tracebacks of errors."
    ),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="Cluster config file (env OSCAR_CONFIG; default ~/.oscar/config.yaml).",
    ),
) -> None:
    """oscar-py: drop files in, get results out."""
    OPTIONS.debug = debug
    OPTIONS.config_path = config


def main() -> None:
    from oscarpy.cli.errors import CliError

    try:
        app()
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    except CliError as error:
        if OPTIONS.debug:
            import traceback

            traceback.print_exc()
        typer.echo(f"error: {error.message}", err=True)
        sys.exit(error.exit_code)
    except Exception as error:
        if OPTIONS.debug:
            raise
        typer.echo(f"error: {type(error).__name__}: {error} (rerun with --debug)", err=True)
        sys.exit(1)
