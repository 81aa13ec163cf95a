"""Options given before the command (`oscar --debug --config FILE …`), read by every command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

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


def load_cluster_config() -> ClusterConfig:
    from oscarpy.cli.clusters import load_config

    return load_config(OPTIONS.config_path)


@contextmanager
def connect(cluster_id: str | None) -> Iterator[OscarClient]:
    """A REST client of the named (or default, or local) cluster, closed afterwards."""
    from oscarpy.cli.client import OscarClient

    resolved_id, cluster = load_cluster_config().resolve(cluster_id)
    client = OscarClient(cluster, resolved_id)
    try:
        yield client
    finally:
        client.close()
