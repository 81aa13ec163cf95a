"""What can go wrong in storage, as one tree, so that callers decide by class and never by message.

    StorageError                 a storage operation failed (e.g. an unreachable S3 endpoint)
    ├── ObjectNotFound           the object (or its bucket) does not exist
    │   └── VersionNotFound      no such version of the object
    ├── BucketNotFound           the bucket does not exist
    ├── BucketNotEmpty           the bucket still holds objects
    ├── InvalidBucketName        the name breaks the S3 bucket naming rules
    ├── InvalidObjectKey         the key is empty or holds a NUL character
    │   └── ObjectKeyTooLong     the key is longer than 1024 bytes in UTF-8
    ├── UploadNotFound           no such multipart upload
    ├── InvalidPart              a part of a completion is missing or its ETag differs
    ├── InvalidPartOrder         the parts of a completion are out of order
    ├── PartTooSmall             a part but the last is under 5 MiB
    ├── PreconditionFailed       a conditional write's If-Match / If-None-Match did not hold
    └── ChecksumMismatch         a declared checksum differs from the one of the bytes

Both the embedded store and the external providers (`storage/providers/`) raise these; boto3's
errors are translated in `providers/s3.py`. The HTTP status of each class is in
`oscarpy/errors.py`; the S3 error code of each is in `s3/errors.py`.
"""

from __future__ import annotations

import errno

__all__ = [
    "BucketNotEmpty",
    "BucketNotFound",
    "ChecksumMismatch",
    "InvalidBucketName",
    "InvalidObjectKey",
    "InvalidPart",
    "InvalidPartOrder",
    "ObjectKeyTooLong",
    "ObjectNotFound",
    "PartTooSmall",
    "PreconditionFailed",
    "StorageError",
    "UploadNotFound",
    "VersionNotFound",
    "is_disk_full",
]


class StorageError(Exception):
    """A storage operation failed (unreachable endpoint, refused credentials, missing object).

    Staging treats it as an infrastructure failure: the job is retried with backoff.
    """


class ObjectNotFound(StorageError):
    """The object does not exist (or its bucket does not)."""


class VersionNotFound(ObjectNotFound):
    """The object has no version of that id."""


class BucketNotFound(StorageError):
    """The bucket does not exist."""


class BucketNotEmpty(StorageError):
    """The bucket still holds objects; delete them first (or pass `force=True`)."""


class InvalidBucketName(StorageError):
    """The name breaks the S3 bucket naming rules (3-63 of a-z, 0-9, '.', '-')."""


class InvalidObjectKey(StorageError):
    """The key is empty or holds a NUL character."""


class ObjectKeyTooLong(InvalidObjectKey):
    """The key is longer than 1024 bytes in UTF-8 (S3 has its own error code for it)."""


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


class ChecksumMismatch(StorageError):
    """A checksum the client declared (of a completed multipart object) is not the one of the
    bytes."""


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
