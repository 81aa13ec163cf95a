"""Files in a service's storage, through the S3 API with boto3 (or WebDAV).

The embedded store (`minio.default`) is reached at the endpoint and with the keys that
`/system/config` hands out in `minio_provider`, as oscar-cli does; other `minio.ID` / `s3.ID` /
`webdav.ID` providers come from the service's own `storage_providers` (answered to its owner).
Transfers over 1 MiB show a Rich progress bar on stderr (stdout stays clean for scripts)
unless `--no-progress` is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from oscarpy.cli.errors import CliError, ConnectionFailed, NotFound, RequestFailed, Unauthorized

PROGRESS_THRESHOLD = 1024 * 1024
"""Transfers up to this size finish too fast for a progress bar to help."""
DEFAULT_PROVIDERS = ("minio.default", "minio")
PROVIDER_KINDS = ("minio", "s3", "onedata", "webdav")


@dataclass(frozen=True)
class ObjectEntry:
    bucket: str
    key: str
    size: int
    last_modified: datetime | None

    @property
    def path(self) -> str:
        """`bucket/key`, the form every file command accepts back."""
        return f"{self.bucket}/{self.key}"


@dataclass(frozen=True)
class ProviderSettings:
    """How to reach one S3-compatible endpoint (OSCAR's MinIOProvider / S3Provider fields)."""

    endpoint: str | None
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    verify: bool = True

    @classmethod
    def from_mapping(cls, data: dict[str, Any], name: str) -> ProviderSettings:
        if not data.get("access_key"):
            raise RequestFailed(f"storage provider {name!r} has no access key")
        return cls(
            endpoint=str(data["endpoint"]).rstrip("/") if data.get("endpoint") else None,
            access_key=str(data["access_key"]),
            secret_key=str(data.get("secret_key") or ""),
            region=str(data.get("region") or "us-east-1"),
            verify=bool(data.get("verify", True)),
        )


def looks_like_provider(value: str) -> bool:
    """`minio`, `minio.default`, `s3.aws`…: how a provider argument is told from a path."""
    if value in DEFAULT_PROVIDERS:
        return True
    kind, separator, identifier = value.partition(".")
    return bool(separator) and kind in PROVIDER_KINDS and bool(identifier) and "/" not in value


def split_remote(path: str) -> tuple[str, str]:
    """`bucket/some/key` → (`bucket`, `some/key`); surrounding slashes are ignored."""
    cleaned = path.strip().strip("/")
    bucket, _, key = cleaned.partition("/")
    if not bucket:
        raise CliError("a remote path must start with a bucket name: BUCKET[/KEY]")
    return bucket, key


class ObjectStorage:
    """One S3 endpoint; every botocore error becomes a one-line `CliError`."""

    def __init__(self, settings: ProviderSettings, *, show_progress: bool = True) -> None:
        import boto3
        from botocore.config import Config

        self.settings = settings
        self.show_progress = show_progress
        self._s3 = boto3.client(
            "s3",
            endpoint_url=settings.endpoint,
            aws_access_key_id=settings.access_key,
            aws_secret_access_key=settings.secret_key,
            region_name=settings.region,
            verify=settings.verify,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 2, "mode": "standard"},
                connect_timeout=10,
            ),
        )

    def upload(self, local: Path, bucket: str, key: str) -> None:
        size = local.stat().st_size
        with (
            self._errors(f"{bucket}/{key}"),
            _progress(f"↑ {local.name}", size, self.show_progress) as advance,
        ):
            self._s3.upload_file(str(local), bucket, key, Callback=advance)

    def download(self, bucket: str, key: str, local: Path) -> None:
        with self._errors(f"{bucket}/{key}"):
            size = int(self._s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
        local.parent.mkdir(parents=True, exist_ok=True)
        temporary = local.with_name(f".{local.name}.part")
        try:
            with (
                self._errors(f"{bucket}/{key}"),
                _progress(f"↓ {Path(key).name}", size, self.show_progress) as advance,
            ):
                self._s3.download_file(bucket, key, str(temporary), Callback=advance)
            temporary.replace(local)
        finally:
            temporary.unlink(missing_ok=True)

    def list(self, bucket: str, prefix: str = "") -> list[ObjectEntry]:
        """Every object under the prefix, folder markers (`dir/`, size 0) left out."""
        entries: list[ObjectEntry] = []
        with self._errors(f"{bucket}/{prefix}"):
            paginator = self._s3.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    key = str(item["Key"])
                    if key.endswith("/") and int(item.get("Size", 0)) == 0:
                        continue
                    entries.append(
                        ObjectEntry(bucket, key, int(item.get("Size", 0)), item.get("LastModified"))
                    )
        return entries

    def exists(self, bucket: str, key: str) -> bool:
        try:
            with self._errors(f"{bucket}/{key}"):
                self._s3.head_object(Bucket=bucket, Key=key)
        except NotFound:
            return False
        return True

    def delete(self, bucket: str, key: str) -> None:
        with self._errors(f"{bucket}/{key}"):
            self._s3.delete_object(Bucket=bucket, Key=key)

    def latest(self, bucket: str, prefix: str) -> ObjectEntry | None:
        entries = [entry for entry in self.list(bucket, prefix) if entry.last_modified]
        return max(entries, key=lambda entry: (entry.last_modified, entry.key), default=None)

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

        endpoint = self.settings.endpoint or "AWS S3"
        try:
            yield
        except EndpointConnectionError as error:
            raise ConnectionFailed(f"cannot reach the storage at {endpoint}: {error}") from error
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            message = str(error.response.get("Error", {}).get("Message", "")) or code
            if code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound"):
                raise NotFound(f"{what}: not found in the storage") from error
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise Unauthorized(f"{endpoint} refused access to {what}: {message}") from error
            raise RequestFailed(f"{what}: storage error {code}: {message}") from error
        except BotoCoreError as error:
            raise ConnectionFailed(f"storage at {endpoint}: {error}") from error


@contextmanager
def _progress(label: str, total: int, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A callback boto3 calls with byte counts; draws a bar only for big transfers."""
    if not enabled or total <= PROGRESS_THRESHOLD:
        yield lambda _count: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(label, total=total)
        yield lambda count: progress.advance(task, count)


class WebdavStorage:
    """A `webdav.ID` provider with the file commands' interface; no progress bars."""

    show_progress = False

    def __init__(self, data: dict[str, Any], name: str) -> None:
        from oscarpy.storage.providers.webdav import WebdavProvider

        self._dav = WebdavProvider(
            hostname=str(data.get("hostname") or ""),
            login=str(data.get("login") or ""),
            password=str(data.get("password") or ""),
            name=name,
        )

    def upload(self, local: Path, bucket: str, key: str) -> None:
        with self._errors():
            self._dav.upload(bucket, key, local)

    def download(self, bucket: str, key: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        temporary = local.with_name(f".{local.name}.part")
        temporary.unlink(missing_ok=True)
        try:
            with self._errors():
                self._dav.download(bucket, key, temporary)
            temporary.replace(local)
        finally:
            temporary.unlink(missing_ok=True)

    def list(self, bucket: str, prefix: str = "") -> list[ObjectEntry]:
        with self._errors():
            return [
                ObjectEntry(bucket, found.key, found.size, found.last_modified)
                for found in self._dav.list_objects(bucket, prefix)
            ]

    def exists(self, bucket: str, key: str) -> bool:
        with self._errors():
            return self._dav.exists(bucket, key)

    def delete(self, bucket: str, key: str) -> None:
        with self._errors():
            self._dav.delete(bucket, key)

    def latest(self, bucket: str, prefix: str) -> ObjectEntry | None:
        entries = [entry for entry in self.list(bucket, prefix) if entry.last_modified]
        return max(entries, key=lambda entry: (entry.last_modified, entry.key), default=None)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        from oscarpy.storage.providers.base import ObjectNotFound, StorageError

        try:
            yield
        except ObjectNotFound as error:
            raise NotFound(str(error)) from error
        except StorageError as error:
            if "access denied" in str(error):
                raise Unauthorized(str(error)) from error
            raise RequestFailed(str(error)) from error


FileStorage = ObjectStorage | WebdavStorage
"""What the file commands use: an S3 endpoint or a WebDAV server."""
