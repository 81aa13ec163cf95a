"""`oscar apply FDL` and `oscar delete FDL`: services from an oscar-cli FDL file.

The FDL is parsed and validated here, with the server's own parser, so that a mistake is
reported with file and field before anything is sent; each service then goes to the cluster
its entry names (or the one given with -c).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import typer

from oscarpy.cli.context import CLUSTER_OPTION, aliases, load_cluster_config
from oscarpy.cli.errors import NotFound, UsageError
from oscarpy.cli.output import success, warn

if TYPE_CHECKING:
    from oscarpy.cli.clusters import Cluster, ClusterConfig

FDL_ARGUMENT = typer.Argument(..., metavar="FDL", help="An FDL file (oscar-cli's YAML format).")


ANY_SCRIPT_OPTION = typer.Option(
    False,
    "--allow-any-script-path",
    help="Let the FDL's script paths point outside the FDL's directory (absolute or ../ paths).",
)


class FdlService(NamedTuple):
    cluster_id: str
    definition: dict[str, Any]
    #: What the local parse dropped or flagged, located in the file.
    warnings: list[str]


def read_fdl(
    path: Path, name: str | None = None, *, any_script_path: bool = False
) -> list[FdlService]:
    """Each service in the file with its cluster id; `name` renames a lone one.

    Script files are read only from the FDL's directory unless `any_script_path`: an FDL
    someone else wrote must not upload this user's files (`script: ~/.ssh/id_rsa`)."""
    from oscarpy.services.model import ANY_SCRIPT_PATH, ServiceDefinitionError, parse_fdl

    try:
        entries = parse_fdl(path, scripts_under=ANY_SCRIPT_PATH if any_script_path else None)
    except ServiceDefinitionError as error:
        raise UsageError(str(error)) from None
    if name is not None and len(entries) != 1:
        raise UsageError(f"-n renames one service, but {path} defines {len(entries)}")
    definitions = []
    for cluster_id, service in entries:
        definition = service.to_json()
        if name is not None:
            definition["name"] = name
        definitions.append(FdlService(cluster_id, definition, service.warnings))
    return definitions


DEFAULT_OPTION = typer.Option(
    False,
    "--default",
    help="Send every service to the default cluster, whatever cluster id the FDL names.",
)


def target_cluster(
    config: ClusterConfig, fdl_cluster_id: str, override: str | None, use_default: bool = False
) -> tuple[str, Cluster]:
    """-c wins; then --default; else the FDL's cluster id if configured; else the default (or
    local) one."""
    if override is not None:
        return config.resolve(override)
    if not use_default and fdl_cluster_id in config.clusters:
        return config.resolve(fdl_cluster_id)
    return config.resolve(None)


def apply(
    fdl: Path = FDL_ARGUMENT,
    cluster: str | None = CLUSTER_OPTION,
    name: str | None = typer.Option(
        None, "--name", "-n", help="Deploy the FDL's only service under this name."
    ),
    use_default: bool = DEFAULT_OPTION,
    any_script_path: bool = ANY_SCRIPT_OPTION,
) -> None:
    """Create the services of an FDL file, or update those that exist."""
    from oscarpy.cli.client import OscarClient

    definitions = read_fdl(fdl, name, any_script_path=any_script_path)
    config = load_cluster_config()
    for fdl_cluster_id, definition, local_warnings in definitions:
        cluster_id, target = target_cluster(config, fdl_cluster_id, cluster, use_default)
        service_name = str(definition["name"])
        with OscarClient(target, cluster_id) as client:
            if client.service_exists(service_name):
                server_warnings = client.update_service(definition)
                verb = "updated"
            else:
                server_warnings = client.create_service(definition)
                verb = "created"
        success(f"service {service_name!r} {verb} in cluster {cluster_id!r}")
        for line in _merged(local_warnings, server_warnings):
            warn(f"service {service_name!r}: {line}")


def _merged(local: list[str], server: list[str]) -> list[str]:
    """The file's warnings (located in it), then the server's that say something more."""
    return local + [line for line in server if not any(seen.endswith(line) for seen in local)]


def delete(
    fdl: Path = FDL_ARGUMENT,
    cluster: str | None = CLUSTER_OPTION,
    use_default: bool = DEFAULT_OPTION,
) -> None:
    """Delete the services an FDL file defines (their buckets and files are kept)."""
    from oscarpy.cli.client import OscarClient

    definitions = read_fdl(fdl)
    config = load_cluster_config()
    missing: list[str] = []
    for fdl_cluster_id, definition, _warnings in definitions:
        cluster_id, target = target_cluster(config, fdl_cluster_id, cluster, use_default)
        service_name = str(definition["name"])
        with OscarClient(target, cluster_id) as client:
            try:
                client.delete_service(service_name)
            except NotFound:
                missing.append(f"{service_name!r} (cluster {cluster_id!r})")
                continue
        success(f"service {service_name!r} deleted from cluster {cluster_id!r}")
    if missing:
        raise NotFound(f"no such service: {', '.join(missing)}")


def register(app: typer.Typer) -> None:
    app.command("apply")(apply)
    app.command("delete")(delete)
    aliases(app, apply, "a")
    aliases(app, delete, "d", "del", "remove", "rm")


__all__ = ["apply", "delete", "read_fdl", "register"]
