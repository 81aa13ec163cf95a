"""`oscar cluster …`: the clusters this client knows, as oscar-cli's `cluster` commands."""

from __future__ import annotations

import sys

import typer

from oscarpy.cli.context import CLUSTER_OPTION, aliases, connect, load_cluster_config
from oscarpy.cli.errors import UsageError
from oscarpy.cli.output import OUTPUT_OPTION, OutputFormat, print_mapping, print_records, success

cluster_app = typer.Typer(
    name="cluster",
    help="Add, list and choose OSCAR clusters.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@cluster_app.command("add")
def add(
    cluster_id: str = typer.Argument(..., metavar="ID", help="A name for the cluster."),
    endpoint: str = typer.Argument(
        ..., metavar="ENDPOINT", help="Its REST API, e.g. https://oscar.example.org."
    ),
    username: str | None = typer.Argument(
        None, metavar="[USER", help="The admin user; omit it to sign in with OIDC."
    ),
    password: str | None = typer.Argument(
        None,
        metavar="[PASSWORD]]",
        help="Omit it and use --password-stdin to keep it out of the shell history.",
    ),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from standard input."
    ),
    oidc_token: str | None = typer.Option(
        None, "--oidc-token", help="An OIDC access token (used until it expires)."
    ),
    oidc_refresh_token: str | None = typer.Option(
        None,
        "--oidc-refresh-token",
        "-t",
        help="An OIDC refresh token: each command gets a fresh access token with it.",
    ),
    oidc_account_name: str | None = typer.Option(
        None,
        "--oidc-account-name",
        "-o",
        help="An oidc-agent account: each command asks oidc-agent for its token.",
    ),
    oidc_token_endpoint: str | None = typer.Option(
        None,
        "--oidc-token-endpoint",
        help="Where to refresh; default: the refresh token's issuer's token endpoint.",
    ),
    oidc_client_id: str | None = typer.Option(
        None,
        "--oidc-client-id",
        help="The client the refresh token was issued to; default: its azp, else token-portal.",
    ),
    disable_ssl: bool = typer.Option(
        False, "--disable-ssl", help="Do not verify the server's TLS certificate."
    ),
) -> None:
    """Add a cluster (or replace one with the same ID); the first one becomes the default.

    Sign in with the admin's USER and PASSWORD, or with one of --oidc-token,
    --oidc-refresh-token or --oidc-account-name.
    """
    from oscarpy.cli.clusters import Cluster

    oidc = {
        "oidc_token": oidc_token or "",
        "oidc_refresh_token": oidc_refresh_token or "",
        "oidc_account_name": oidc_account_name or "",
    }
    given = [f"--{key.replace('_', '-')}" for key, value in oidc.items() if value]
    if len(given) > 1:
        raise UsageError(f"give one of {', '.join(given)}, not several")
    if given and (username is not None or password is not None or password_stdin):
        raise UsageError(f"{given[0]} signs in with OIDC: give no USER or password")
    if not endpoint.startswith(("http://", "https://")):
        raise UsageError(f"endpoint {endpoint!r} must start with http:// or https://")
    if given:
        username, password = "", ""
    else:
        if username is None:
            raise UsageError("give USER and PASSWORD, or an --oidc-* option")
        password = _password(password, password_stdin)
    config = load_cluster_config()
    config.add(
        cluster_id,
        Cluster(
            endpoint=endpoint.rstrip("/"),
            auth_user=username,
            auth_password=password,
            ssl_verify=not disable_ssl,
            oidc_token_endpoint=oidc_token_endpoint or "",
            oidc_client_id=oidc_client_id or "",
            **oidc,
        ),
    )
    config.save()
    marker = " (default)" if config.default == cluster_id else ""
    success(f"cluster {cluster_id!r} added{marker} to {config.path}")


def _password(password: str | None, password_stdin: bool) -> str:
    if password is not None and password_stdin:
        raise UsageError("give the password as an argument or with --password-stdin, not both")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif password is None:
        if not sys.stdin.isatty():
            raise UsageError("no password: pass PASSWORD or --password-stdin")
        password = typer.prompt("Password", hide_input=True)
    if not password:
        raise UsageError("the password is empty")
    return password


@cluster_app.command("default")
def default(
    set_id: str | None = typer.Option(None, "--set", "-s", metavar="ID", help="Make it default."),
) -> None:
    """Print the default cluster, or set it with -s ID."""
    config = load_cluster_config()
    if set_id is None:
        if config.default is None:
            raise UsageError("no default cluster set: use `oscar cluster default -s ID`")
        typer.echo(config.default)
        return
    config.set_default(set_id)
    config.save()
    success(f"default cluster is now {set_id!r}")


@cluster_app.command("info")
def info(
    cluster: str | None = CLUSTER_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Ask the cluster for its version and backend (checks endpoint and credentials)."""
    with connect(cluster) as client:
        details = client.info()
        print_mapping(
            {"cluster": client.cluster_id, "endpoint": client.cluster.endpoint, **details}, output
        )


@cluster_app.command("list")
def list_clusters(output: OutputFormat = OUTPUT_OPTION) -> None:
    """List the configured clusters (passwords are never printed)."""
    config = load_cluster_config()
    records = [
        {
            "id": cluster_id,
            "endpoint": cluster.endpoint,
            "user": cluster.auth_user or ("(oidc)" if cluster.uses_oidc else ""),
            "ssl_verify": cluster.ssl_verify,
            "default": cluster_id == config.default,
        }
        for cluster_id, cluster in sorted(config.clusters.items())
    ]
    print_records(
        records,
        [
            ("id", "ID"),
            ("endpoint", "ENDPOINT"),
            ("user", "USER"),
            ("ssl_verify", "SSL"),
            ("default", "DEFAULT"),
        ],
        output,
        empty=f"no clusters configured in {config.path}; add one with `oscar cluster add`",
    )


@cluster_app.command("remove")
def remove(cluster_id: str = typer.Argument(..., metavar="ID")) -> None:
    """Forget a cluster."""
    config = load_cluster_config()
    config.remove(cluster_id)
    config.save()
    success(f"cluster {cluster_id!r} removed")


# oscar-cli's names: `cluster delete` (with its aliases) is `remove` here.
aliases(cluster_app, add, "a")
aliases(cluster_app, info, "i")
aliases(cluster_app, list_clusters, "ls")
aliases(cluster_app, remove, "delete", "del", "rm")
