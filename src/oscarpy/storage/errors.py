"""What can go wrong in the object store, as one tree rooted at `StorageError`.

The S3 front-end maps each class to its S3 error code in one table (`s3/errors.py`); in-process
callers (the services registry, the job engine) catch the classes they care about.
"""

from __future__ import annotations

import errno

from oscarpy.storage.providers.base import ObjectNotFound, StorageError

__all__ = [
    "BucketNotEmpty",
    "BucketNotFound",
    "InvalidBucketName",
    "InvalidObjectKey",
    "InvalidPart",
    "InvalidPartOrder",
    "ObjectNotFound",
    "PartTooSmall",
    "PreconditionFailed",
    "StorageError",
    "is_disk_full",
    "UploadNotFound",
]


class BucketNotFound(StorageError):
    """The bucket does not exist."""


class BucketNotEmpty(StorageError):
    """The bucket still holds objects; delete them first (or pass `force=True`)."""


class InvalidBucketName(StorageError):
    """The name breaks the S3 bucket naming rules (3-63 of a-z, 0-9, '.', '-')."""


class InvalidObjectKey(StorageError):
    """The key is empty, longer than 1024 bytes in UTF-8, or holds a NUL character."""


class UploadNotFound(StorageError):
    """The multipart upload does not exist (never created, completed or aborted)."""


class InvalidPart(StorageError):
    """A part named in a completion is missing or its ETag does not match."""


class InvalidPartOrder(StorageError):
    """The parts of a completion are not in ascending part-number order."""


class PartTooSmall(StorageError):
    """A part other than the last is smaller than the 5 MiB S3 minimum."""


class PreconditionFailed(StorageError):
    """A conditional write's condition (If-Match, If-None-Match) did not hold when it
    committed."""


def is_disk_full(error: BaseException) -> bool:
    """Whether `error` (or what it wraps, e.g. a state DB error) says the disk is full: the
    client gets 507 `InsufficientStorage`, which it may retry later, not a 500."""
    seen: BaseException | None = error
    for _ in range(10):  # a chain is short; the bound guards against a cyclic one
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "database or disk is full" in str(seen):  # SQLite's SQLITE_FULL
            return True
        seen = seen.__cause__ or seen.__context__
    return False
