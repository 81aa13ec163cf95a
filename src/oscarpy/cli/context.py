"""Options given before the command (`oscar --debug --config FILE …`), read by every command."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from oscarpy.cli.errors import UsageError

if TYPE_CHECKING:
    from oscarpy.cli.client import OscarClient
    from oscarpy.cli.clusters import ClusterConfig


@dataclass
class GlobalOptions:
    debug: bool = False
    config_path: Path | None = None


OPTIONS = GlobalOptions()

CLUSTER_OPTION = typer.Option(
    None, "--cluster", "-c", help="Cluster id from the config file [default: the default one]."
)
ENDPOINT_OPTION = typer.Option(
    None,
    "--endpoint",
    "-e",
    help="URL of a cluster that is not in the config file (needs the service's --token).",
)
#: The cluster id shown for a cluster given with --endpoint.
ENDPOINT_CLUSTER_ID = "endpoint"


def aliases(app: typer.Typer, command: Callable[..., Any], *names: str) -> None:
    """Register `command` again under oscar-cli's other names, hidden from the help."""
    for name in names:
        app.command(name, hidden=True)(command)


def load_cluster_config() -> ClusterConfig:
    from oscarpy.cli.clusters import load_config

    return load_config(OPTIONS.config_path)


@contextmanager
def connect(cluster_id: str | None, endpoint: str | None = None) -> Iterator[OscarClient]:
    """A REST client of the named (or default, or local) cluster, closed afterwards; with
    `endpoint`, of that URL without credentials (a service's token authenticates the call)."""
    from oscarpy.cli.client import OscarClient
    from oscarpy.cli.clusters import Cluster

    if endpoint is not None:
        if cluster_id is not None:
            raise UsageError("give -c ID or -e ENDPOINT, not both")
        resolved_id = ENDPOINT_CLUSTER_ID
        cluster = Cluster(endpoint=endpoint.rstrip("/"), auth_user="", auth_password="")
        client = OscarClient(cluster, resolved_id)
    else:
        config = load_cluster_config()
        resolved_id, cluster = config.resolve(cluster_id)
        refresh_token = cluster.oidc_refresh_token
        client = OscarClient(cluster, resolved_id)
        if cluster.oidc_refresh_token != refresh_token and resolved_id in config.clusters:
            config.save()  # the issuer rotated the refresh token: the old one is spent
    try:
        yield client
    finally:
        client.close()
