"""The embedded store seen through the `StorageProvider` interface that staging uses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from oscarpy.storage.blobs import copy_out
from oscarpy.storage.errors import BucketNotFound, ObjectNotFound
from oscarpy.storage.providers.base import ObjectInfo
from oscarpy.storage.store import ObjectStore


class EmbeddedProvider:
    """Stages to and from the embedded store in process, without HTTP.

    Downloads are copies, not hard links: a script that appends to its input file in place
    would otherwise change the stored object. `shutil.copyfile` lets the kernel copy
    (`sendfile`), so no bytes pass through Python.
    """

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def download(self, bucket: str, key: str, destination: Path) -> ObjectInfo:
        try:
            found, handle = self.store.open_object(bucket, key)
        except BucketNotFound as error:
            raise ObjectNotFound(str(error)) from error
        with handle:
            copy_out(handle, destination)
        return ObjectInfo(found.bucket, found.key, found.size, found.etag)

    def upload(
        self, bucket: str, key: str, source: Path, content_type: str | None = None
    ) -> ObjectInfo:
        found = self.store.put_file(bucket, key, source, content_type=content_type)
        return ObjectInfo(found.bucket, found.key, found.size, found.etag)

    def list_objects(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        for found in self.store.list_objects(bucket, prefix):
            yield ObjectInfo(found.bucket, found.key, found.size, found.etag, found.last_modified)

    def ensure_bucket(self, bucket: str) -> None:
        self.store.ensure_bucket(bucket)
