"""The narrow interface through which staging (the supervisor) reaches any storage.

The embedded store implements it in process; external S3-compatible endpoints (`minio.<id>`,
`s3.<id>`) implement it through boto3. The supervisor sees nothing else, so that it can run on
another host than the API. Its errors are `storage/errors.py`'s, re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from oscarpy.storage.errors import ObjectNotFound, StorageError

__all__ = ["ObjectInfo", "ObjectNotFound", "StorageError", "StorageProvider"]


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    size: int
    etag: str
    last_modified: datetime | None = None
    """When this upload was committed, where the listing says (it tells re-uploads apart)."""


class StorageProvider(Protocol):
    def download(self, bucket: str, key: str, destination: Path) -> ObjectInfo:
        """Write the object to `destination` (which does not exist yet) and describe it."""
        ...

    def upload(
        self, bucket: str, key: str, source: Path, content_type: str | None = None
    ) -> ObjectInfo:
        """Store the file at `source` as the object `key`, replacing any previous version."""
        ...

    def list_objects(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix`, in key order."""
        ...

    def ensure_bucket(self, bucket: str) -> None:
        """Create the bucket if it does not exist; an existing bucket is fine."""
        ...
