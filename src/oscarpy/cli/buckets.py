"""`oscar bucket …`: list, inspect, create, share and delete buckets, and presigned URLs, through
`/system/buckets` (so they work against OSCAR too). `list` and `get` print what oscar-cli's
`bucket list` and `bucket get` print."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from oscarpy.cli.context import CLUSTER_OPTION, aliases, connect
from oscarpy.cli.errors import RequestFailed, UsageError
from oscarpy.cli.output import (
    OUTPUT_OPTION,
    OutputFormat,
    human_size,
    print_data,
    print_records,
    success,
)

if TYPE_CHECKING:
    from oscarpy.cli.client import OscarClient

bucket_app = typer.Typer(
    name="bucket",
    help="Manage buckets and who may use them.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

VISIBILITY_OPTION = typer.Option(
    None, "--visibility", help="private (default), restricted or public."
)
ALLOWED_OPTION = typer.Option(
    None, "--allowed-user", "-u", help="A user who may use a restricted bucket (repeatable)."
)


def _segment(name: str) -> str:
    from urllib.parse import quote

    if not name or name in (".", "..") or "/" in name:
        raise UsageError(f"invalid bucket name {name!r}")
    return quote(name, safe="")


def _object(client: OscarClient, method: str, path: str, what: str, **options: Any) -> Any:
    response = client.request(method, path, what=what, **options)
    try:
        return response.json()
    except ValueError:
        raise RequestFailed(f"{what}: the server did not answer with JSON") from None


@bucket_app.command("list")
def list_buckets(
    cluster: str | None = CLUSTER_OPTION, output: OutputFormat = OUTPUT_OPTION
) -> None:
    """List the buckets you may see, with their visibility and owner."""
    with connect(cluster) as client:
        data = _object(client, "GET", "/system/buckets", "list buckets")
    buckets = data.get("buckets") if isinstance(data, dict) else data  # oscar-cli takes both
    records = [item for item in buckets or [] if isinstance(item, dict)]
    records.sort(key=lambda item: str(item.get("bucket_name", "")).lower())
    print_records(
        [
            {
                "name": item.get("bucket_name"),
                "visibility": item.get("visibility"),
                "allowed": ", ".join(item.get("allowed_users") or []),
                "owner": item.get("owner"),
            }
            for item in records
        ]
        if output is OutputFormat.table
        else records,
        [
            ("name", "NAME"),
            ("visibility", "VISIBILITY"),
            ("allowed", "ALLOWED USERS"),
            ("owner", "OWNER"),
        ],
        output,
        empty="There is no Bucket.",
    )


@bucket_app.command("get")
def get_bucket(
    name: str = typer.Argument(..., metavar="BUCKET"),
    prefix: str = typer.Option("", "--prefix", help="Only objects whose key starts with this."),
    page: str = typer.Option("", "--page", help="Continue from this page token."),
    limit: int = typer.Option(0, "--limit", min=0, help="Objects per page (server default)."),
    all_pages: bool = typer.Option(False, "--all", help="Fetch every page."),
    cluster: str | None = CLUSTER_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """List a bucket's objects, a page at a time unless --all."""
    objects: list[dict[str, Any]] = []
    answer: dict[str, Any] = {}
    with connect(cluster) as client:
        while True:
            params: dict[str, Any] = {"prefix": prefix} if prefix else {}
            if page:
                params["page"] = page
            if limit:
                params["limit"] = limit
            answer = _object(
                client,
                "GET",
                f"/system/buckets/{_segment(name)}",
                f"bucket {name!r}",
                params=params,
            )
            objects += [item for item in answer.get("objects") or [] if isinstance(item, dict)]
            page = str(answer.get("next_page") or "")
            if not (all_pages and page and answer.get("is_truncated")):
                break
    if print_data(dict(answer, objects=objects), output):
        return
    print_records(
        [
            {
                "name": item.get("object_name"),
                "size": human_size(int(item.get("size_bytes") or 0)),
                "modified": item.get("last_modified"),
            }
            for item in objects
        ],
        [("name", "NAME"), ("size", "SIZE"), ("modified", "LAST MODIFIED")],
        output,
        empty=f"Bucket {name!r} has no objects.",
    )
    if page and answer.get("is_truncated"):
        typer.echo(
            f"More objects are available: continue with --page {page} or fetch all with --all.",
            err=True,
        )


def _sharing(visibility: str | None, allowed: list[str] | None) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if visibility is not None:
        body["visibility"] = visibility
    if allowed:
        body["allowed_users"] = allowed
    return body


@bucket_app.command("create")
def create_bucket(
    name: str = typer.Argument(..., metavar="BUCKET[/FOLDER]"),
    visibility: str | None = VISIBILITY_OPTION,
    allowed: list[str] | None = ALLOWED_OPTION,
    cluster: str | None = CLUSTER_OPTION,
) -> None:
    """Create a bucket (and a folder in it), owned by you."""
    body = {"bucket_name": name, **_sharing(visibility, allowed)}
    with connect(cluster) as client:
        client.request("POST", "/system/buckets", json=body, what=f"create bucket {name!r}")
    success(f"bucket {name!r} created")


@bucket_app.command("share")
def share_bucket(
    name: str = typer.Argument(..., metavar="BUCKET"),
    visibility: str = typer.Option(..., "--visibility", help="private, restricted or public."),
    allowed: list[str] | None = ALLOWED_OPTION,
    cluster: str | None = CLUSTER_OPTION,
) -> None:
    """Set who may use a bucket: its visibility and, for restricted, the allowed users."""
    body = {"bucket_name": name, **_sharing(visibility, allowed)}
    with connect(cluster) as client:
        client.request("PUT", "/system/buckets", json=body, what=f"bucket {name!r}")
    success(f"bucket {name!r} is {visibility}")


@bucket_app.command("delete")
def delete_bucket(
    name: str = typer.Argument(..., metavar="BUCKET"),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    cluster: str | None = CLUSTER_OPTION,
) -> None:
    """Delete a bucket and every object in it."""
    if not yes:
        typer.confirm(f"Delete bucket {name!r} and all its objects?", abort=True)
    with connect(cluster) as client:
        client.request("DELETE", f"/system/buckets/{_segment(name)}", what=f"bucket {name!r}")
    success(f"bucket {name!r} deleted")


@bucket_app.command("presign")
def presign(
    name: str = typer.Argument(..., metavar="BUCKET"),
    key: str = typer.Argument(..., metavar="KEY"),
    upload: bool = typer.Option(False, "--upload", help="A PUT URL instead of a GET URL."),
    expires: int = typer.Option(900, "--expires", min=1, help="Seconds the URL stays valid."),
    cluster: str | None = CLUSTER_OPTION,
) -> None:
    """Print a presigned URL that downloads (or uploads) one object without credentials."""
    body = {
        "object_key": key,
        "operation": "upload" if upload else "download",
        "expires_in": expires,
    }
    with connect(cluster) as client:
        answer = _object(
            client,
            "POST",
            f"/system/buckets/{_segment(name)}/presign",
            f"bucket {name!r}",
            json=body,
        )
    typer.echo(answer.get("url", ""))


aliases(bucket_app, list_buckets, "ls")
aliases(bucket_app, delete_bucket, "rm")
