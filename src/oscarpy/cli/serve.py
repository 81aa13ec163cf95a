"""`oscar serve`: start the whole platform in this process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from oscarpy.cli.exit_codes import EXIT_STARTUP, EXIT_USAGE


def serve(
    host: str | None = typer.Option(
        None, help="Listen address (env OSCAR_HOST; default 127.0.0.1)."
    ),
    port: int | None = typer.Option(None, help="REST API port (env OSCAR_PORT; default 8080)."),
    s3_port: int | None = typer.Option(
        None, "--s3-port", help="S3 API port (env OSCAR_S3_PORT; default 9000)."
    ),
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        help="Data directory (env OSCAR_DATA_DIR; default under your data home).",
    ),
    database_url: str | None = typer.Option(
        None, "--database-url", help="State DB URL, SQLite or PostgreSQL (env OSCAR_DATABASE_URL)."
    ),
    runtime: str | None = typer.Option(
        None, help="How scripts run: docker, process or swarm (env OSCAR_RUNTIME; default docker)."
    ),
    log_level: str | None = typer.Option(
        None, "--log-level", help="DEBUG, INFO, WARNING or ERROR (env OSCAR_LOG_LEVEL)."
    ),
) -> None:
    """Start the REST API, the S3 front-end and the job engine.

    The admin user and password come from OSCAR_USERNAME and OSCAR_PASSWORD; without a
    password one is generated on first start, printed once and stored in the data directory.
    """
    from pydantic import ValidationError

    from oscarpy.config import Settings
    from oscarpy.log import configure_logging
    from oscarpy.server import StartupError, run

    flags: dict[str, Any] = {
        "host": host,
        "port": port,
        "s3_port": s3_port,
        "data_dir": data_dir,
        "database_url": database_url,
        "runtime": runtime,
        "log_level": log_level,
    }
    try:
        settings = Settings(**{name: value for name, value in flags.items() if value is not None})
    except ValidationError as error:
        for problem in error.errors():
            field = ".".join(str(part) for part in problem["loc"])
            typer.echo(f"error: invalid setting {field}: {problem['msg']}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    configure_logging(settings.log_level)
    try:
        run(settings)
    except StartupError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_STARTUP) from None
