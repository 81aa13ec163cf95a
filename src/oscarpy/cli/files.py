"""`oscar service put-file|get-file|list-files|delete-file`: a service's files, over S3.

Paths are `BUCKET/KEY`, as in oscar-cli. The provider and path default to the service's
first input (`put-file`) or first output (`get-file`, `list-files`), so that the common case
needs no path at all: `oscar service put-file NAME photo.jpg`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from oscarpy.cli.context import CLUSTER_OPTION, aliases, connect
from oscarpy.cli.errors import CliError, NotFound, UsageError
from oscarpy.cli.output import (
    OUTPUT_OPTION,
    OutputFormat,
    human_size,
    print_records,
    success,
)

if TYPE_CHECKING:
    from oscarpy.cli.client import OscarClient
    from oscarpy.cli.transfers import FileStorage

HIDDEN_SECRET = "hidden"
"""What the server shows instead of an external provider's secret key."""

NO_PROGRESS_OPTION = typer.Option(
    False, "--no-progress", help="No progress bar (shown for transfers over 1 MiB)."
)


@dataclass(frozen=True)
class StoragePath:
    provider: str
    path: str


def default_path(service: dict[str, Any], direction: str, provider: str | None) -> StoragePath:
    """The first `input`/`output` entry (with that provider, if one is given)."""
    entries = service.get(direction) or []
    for entry in entries:
        if not isinstance(entry, dict) or not entry.get("path"):
            continue
        entry_provider = str(entry.get("storage_provider") or "minio.default")
        if provider is None or _same_provider(entry_provider, provider):
            return StoragePath(entry_provider, str(entry["path"]).strip("/"))
    which = f" for provider {provider!r}" if provider else ""
    raise UsageError(
        f"service {service.get('name')!r} has no {direction} path{which}: give the remote path"
    )


def _same_provider(first: str, second: str) -> bool:
    from oscarpy.cli.transfers import DEFAULT_PROVIDERS

    return first == second or (first in DEFAULT_PROVIDERS and second in DEFAULT_PROVIDERS)


def open_storage(
    client: OscarClient, service: dict[str, Any], provider: str, show_progress: bool
) -> FileStorage:
    """The S3 endpoint behind a provider name, as the service and the cluster define it."""
    from oscarpy.cli.transfers import (
        DEFAULT_PROVIDERS,
        ObjectStorage,
        ProviderSettings,
        WebdavStorage,
    )

    kind, _, identifier = provider.partition(".")
    identifier = identifier or "default"
    declared = ((service.get("storage_providers") or {}).get(kind) or {}).get(identifier)
    if isinstance(declared, dict) and kind in ("minio", "s3"):
        if declared.get("secret_key") == HIDDEN_SECRET:
            raise CliError(
                f"the cluster does not reveal the secret key of provider {provider!r} of "
                f"service {service.get('name')!r}: reach that storage with its own S3 client"
            )
        return ObjectStorage(
            ProviderSettings.from_mapping(declared, provider), show_progress=show_progress
        )
    if isinstance(declared, dict) and kind == "webdav":
        if declared.get("password") == HIDDEN_SECRET:
            raise CliError(
                f"the cluster does not reveal the password of provider {provider!r} of service "
                f"{service.get('name')!r} (only to its owner)"
            )
        return WebdavStorage(declared, provider)
    if provider in DEFAULT_PROVIDERS:
        minio = client.config().get("minio_provider")
        if not isinstance(minio, dict):
            raise CliError("the cluster's /system/config has no minio_provider")
        return ObjectStorage(
            ProviderSettings.from_mapping(minio, provider), show_progress=show_progress
        )
    if kind not in ("minio", "s3"):
        raise UsageError(
            f"provider {provider!r}: only minio, s3 and webdav providers hold files here"
        )
    raise UsageError(f"provider {provider!r} is not defined in service {service.get('name')!r}")


def _split_provider(args: list[str], most: int) -> tuple[str | None, list[str]]:
    """Tell an optional leading PROVIDER from a path, as oscar-cli's positional forms need."""
    from oscarpy.cli.transfers import looks_like_provider

    if len(args) > most + 1:
        raise UsageError(f"too many arguments: {' '.join(args)}")
    if args and (
        len(args) == most + 1 or (looks_like_provider(args[0]) and not Path(args[0]).exists())
    ):
        if not looks_like_provider(args[0]):
            raise UsageError(f"{args[0]!r} is not a storage provider (like minio.default)")
        return args[0], args[1:]
    return None, args


@dataclass(frozen=True)
class Upload:
    local: Path
    key: str


def plan_uploads(local: Path, bucket: str, key: str, remote_is_folder: bool) -> list[Upload]:
    """One upload per file; a directory's files keep their relative paths under the key."""
    if local.is_dir():
        prefix = f"{key.rstrip('/')}/" if key else ""
        return [
            Upload(path, prefix + path.relative_to(local).as_posix())
            for path in sorted(local.rglob("*"))
            if path.is_file()
        ]
    if not local.is_file():
        raise UsageError(f"{local} is not a file or directory")
    if remote_is_folder or not key:
        key = f"{key.rstrip('/')}/{local.name}" if key else local.name
    return [Upload(local, key)]


def put_file(
    name: str = typer.Argument(..., metavar="NAME"),
    args: list[str] = typer.Argument(..., metavar="[PROVIDER] LOCAL [REMOTE]"),
    no_progress: bool = NO_PROGRESS_OPTION,
    cluster: str | None = CLUSTER_OPTION,
) -> None:
    """Upload a file or a directory (recursively) to the service's input.

    REMOTE is BUCKET/KEY (a trailing / means a folder); default: the first input path.
    """
    from oscarpy.cli.transfers import split_remote

    provider, rest = _split_provider(args, 2)
    if not rest:
        raise UsageError("missing LOCAL: the file or directory to upload")
    local = Path(rest[0])
    with connect(cluster) as client:
        service = client.get_service(name)
        if len(rest) == 2:
            remote = rest[1]
            folder = remote.endswith("/") or "/" not in remote.strip("/")
            provider = provider or default_path(service, "input", None).provider
        else:
            target = default_path(service, "input", provider)
            provider, remote, folder = target.provider, target.path, True
        bucket, key = split_remote(remote)
        uploads = plan_uploads(local, bucket, key, folder)
        if not uploads:
            raise UsageError(f"{local} holds no files")
        storage = open_storage(client, service, provider, not no_progress)
        for upload in uploads:
            storage.upload(upload.local, bucket, upload.key)
            success(f"uploaded {upload.local} → {bucket}/{upload.key}")


def get_file(
    name: str = typer.Argument(..., metavar="NAME"),
    args: list[str] | None = typer.Argument(None, metavar="[PROVIDER] REMOTE [LOCAL]"),
    download_latest_into: Path | None = typer.Option(
        None,
        "--download-latest-into",
        help="Download the newest file under REMOTE (default: the first output) into DIR.",
    ),
    no_progress: bool = NO_PROGRESS_OPTION,
    cluster: str | None = CLUSTER_OPTION,
) -> None:
    """Download a file (REMOTE is BUCKET/KEY) from the service's storage; LOCAL `-` is stdout."""
    from oscarpy.cli.transfers import split_remote

    provider, rest = _split_provider(list(args or []), 2)
    with connect(cluster) as client:
        service = client.get_service(name)
        if download_latest_into is not None:
            if len(rest) > 1:
                raise UsageError("with --download-latest-into give at most REMOTE, no LOCAL")
            target = default_path(service, "output", provider) if not rest else None
            remote = rest[0] if rest else target.path  # type: ignore[union-attr]
            provider = provider or (target.provider if target else "minio.default")
            storage = open_storage(client, service, provider, not no_progress)
            bucket, prefix = split_remote(remote)
            prefix = f"{prefix.rstrip('/')}/" if prefix else ""
            newest = storage.latest(bucket, prefix)
            if newest is None:
                raise CliError(f"no files under {remote}")
            local = download_latest_into / Path(newest.key).name
            storage.download(bucket, newest.key, local)
            success(f"downloaded {newest.path} → {local}")
            typer.echo(str(local))
            return
        if not rest:
            raise UsageError("missing REMOTE: the BUCKET/KEY to download (see list-files)")
        remote = rest[0]
        provider = provider or default_path(service, "output", None).provider
        bucket, key = split_remote(remote)
        if not key:
            raise UsageError(f"{remote!r} names a bucket, not a file")
        storage = open_storage(client, service, provider, not no_progress)
        if len(rest) > 1 and rest[1] == "-":
            _download_to_stdout(storage, bucket, key)
            return
        local = Path(rest[1]) if len(rest) > 1 else Path(Path(key).name)
        if local.is_dir():
            local = local / Path(key).name
        storage.download(bucket, key, local)
        success(f"downloaded {bucket}/{key} → {local}")


def _download_to_stdout(storage: FileStorage, bucket: str, key: str) -> None:
    """LOCAL `-`: the file's bytes on stdout, for pipes."""
    import shutil
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="oscar-get-") as directory:
        local = Path(directory) / "object"
        storage.show_progress = False
        storage.download(bucket, key, local)
        with local.open("rb") as source:
            shutil.copyfileobj(source, sys.stdout.buffer)
        sys.stdout.buffer.flush()


def list_files(
    name: str = typer.Argument(..., metavar="NAME"),
    args: list[str] | None = typer.Argument(None, metavar="[PROVIDER] [PATH]"),
    cluster: str | None = CLUSTER_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """List files under PATH (BUCKET[/FOLDER]; default: the service's first output)."""
    from oscarpy.cli.transfers import split_remote

    provider, rest = _split_provider(list(args or []), 1)
    if len(rest) > 1:
        raise UsageError(f"too many arguments: {' '.join(rest)}")
    with connect(cluster) as client:
        service = client.get_service(name)
        if rest:
            remote, provider = rest[0], provider or default_path(service, "output", None).provider
        else:
            target = default_path(service, "output", provider)
            remote, provider = target.path, target.provider
        bucket, prefix = split_remote(remote)
        prefix = f"{prefix.rstrip('/')}/" if prefix else ""
        storage = open_storage(client, service, provider, show_progress=False)
        entries = storage.list(bucket, prefix)
    records = [
        {
            "path": entry.path,
            "size": entry.size,
            "last_modified": entry.last_modified.isoformat() if entry.last_modified else None,
        }
        for entry in entries
    ]
    if output is OutputFormat.table:
        for record in records:
            record["size"] = human_size(int(record["size"] or 0))
    print_records(
        records,
        [("path", "PATH"), ("size", "SIZE"), ("last_modified", "MODIFIED")],
        output,
        empty=f"no files under {remote}",
    )


def delete_file(
    name: str = typer.Argument(..., metavar="NAME"),
    args: list[str] = typer.Argument(..., metavar="[PROVIDER] REMOTE..."),
    cluster: str | None = CLUSTER_OPTION,
) -> None:
    """Delete files (BUCKET/KEY) from the service's storage."""
    from oscarpy.cli.transfers import looks_like_provider, split_remote

    provider = None
    if len(args) > 1 and looks_like_provider(args[0]):
        provider, args = args[0], args[1:]
    with connect(cluster) as client:
        service = client.get_service(name)
        provider = provider or default_path(service, "input", None).provider
        storage = open_storage(client, service, provider, show_progress=False)
        for remote in args:
            bucket, key = split_remote(remote)
            if not key:
                raise UsageError(f"{remote!r} names a bucket, not a file")
            if not storage.exists(bucket, key):
                raise NotFound(f"{remote}: no such file")
            storage.delete(bucket, key)
            success(f"deleted {bucket}/{key}")


def register(app: typer.Typer) -> None:
    app.command("put-file")(put_file)
    app.command("get-file")(get_file)
    app.command("list-files")(list_files)
    app.command("delete-file")(delete_file)
    # oscar-cli's other names for them.
    aliases(app, put_file, "pf")
    aliases(app, get_file, "gf")
    aliases(app, list_files, "list-file", "lsf")
    aliases(app, delete_file, "df", "del-fil", "remove-file", "rmf")
