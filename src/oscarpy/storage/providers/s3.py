"""External S3-compatible storage (`minio.<id>`, `s3.<id>`) through boto3.

The only module that sees `botocore` errors; they leave it as `StorageError`/`ObjectNotFound`,
which staging treats as infrastructure failures (retried with backoff).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
from boto3.s3.transfer import TransferConfig

from oscarpy.log import register_secret
from oscarpy.storage.providers.base import ObjectInfo, ObjectNotFound, StorageError

log = logging.getLogger(__name__)

_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}
_TRANSFER = TransferConfig(multipart_threshold=64 * 1024 * 1024, max_concurrency=4)


def _etag(value: Any) -> str:
    return str(value or "").strip('"')


class S3Provider:
    """One external endpoint with its credentials; `endpoint=None` means AWS S3."""

    def __init__(
        self,
        *,
        endpoint: str | None,
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
        verify: bool = True,
        name: str = "s3",
    ) -> None:
        if not access_key or not secret_key:
            # boto3 would fall back to the host's own credentials (environment, ~/.aws, the
            # instance role): a service would read and write with the server's identity.
            raise StorageError(
                f"storage provider {name} has no access_key or secret_key; give both (the "
                "server never lends its own cloud credentials to a service)"
            )
        register_secret(secret_key)
        self.name = name
        if endpoint and "://" not in endpoint:
            endpoint = f"{'https' if verify else 'http'}://{endpoint}"
        self.endpoint = endpoint
        self._client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint or None,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=region or "us-east-1",
            verify=verify,
            config=botocore.config.Config(
                retries={"max_attempts": 3, "mode": "standard"},
                s3={"addressing_style": "path"} if endpoint else {},
                connect_timeout=10,
                read_timeout=60,
            ),
        )

    def _where(self, bucket: str, key: str = "") -> str:
        return f"{self.name} {bucket}/{key}" if key else f"{self.name} {bucket}"

    def _translate(self, error: Exception, bucket: str, key: str = "") -> StorageError:
        if isinstance(error, botocore.exceptions.ClientError):
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in _NOT_FOUND:
                return ObjectNotFound(f"{self._where(bucket, key)} not found ({code})")
            return StorageError(f"{self._where(bucket, key)}: {code or error}")
        return StorageError(f"{self._where(bucket, key)}: {error}")

    def download(self, bucket: str, key: str, destination: Path) -> ObjectInfo:
        try:
            head = self._client.head_object(Bucket=bucket, Key=key)
            self._client.download_file(bucket, key, str(destination), Config=_TRANSFER)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            raise self._translate(error, bucket, key) from error
        return ObjectInfo(bucket, key, int(head.get("ContentLength", 0)), _etag(head.get("ETag")))

    def upload(
        self, bucket: str, key: str, source: Path, content_type: str | None = None
    ) -> ObjectInfo:
        extra = {"ContentType": content_type} if content_type else None
        try:
            self._client.upload_file(str(source), bucket, key, ExtraArgs=extra, Config=_TRANSFER)
            head = self._client.head_object(Bucket=bucket, Key=key)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            raise self._translate(error, bucket, key) from error
        return ObjectInfo(bucket, key, int(head.get("ContentLength", 0)), _etag(head.get("ETag")))

    def list_objects(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for entry in page.get("Contents", []):
                    yield ObjectInfo(
                        bucket,
                        entry["Key"],
                        int(entry.get("Size", 0)),
                        _etag(entry.get("ETag")),
                        entry.get("LastModified"),
                    )
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            raise self._translate(error, bucket) from error

    def ensure_bucket(self, bucket: str) -> None:
        try:
            self._client.head_bucket(Bucket=bucket)
            return
        except botocore.exceptions.ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code not in _NOT_FOUND:
                raise self._translate(error, bucket) from error
        except botocore.exceptions.BotoCoreError as error:
            raise self._translate(error, bucket) from error
        try:
            self._client.create_bucket(Bucket=bucket)
        except botocore.exceptions.ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._translate(error, bucket) from error
        except botocore.exceptions.BotoCoreError as error:
            raise self._translate(error, bucket) from error
