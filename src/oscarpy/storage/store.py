"""The embedded object store: blobs on disk, metadata and events in the state DB.

Every write follows the same order: the bytes go to a temporary file, are fsynced and renamed
to a final name under a generated id; then one transaction records the metadata and its
`object_events` row; only after the commit is an old blob removed and are listeners woken. A
crash at any point leaves either the old object or the new one, never a half-written one, and
at worst an unreferenced blob that `recover()` removes on the next start.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql import ColumnElement

from oscarpy.db import Database, utcnow
from oscarpy.storage import checksums
from oscarpy.storage.blobs import TAG_LENGTH, Blobs, BlobWriter, WrittenBlob, tag_of
from oscarpy.storage.checksums import Checksum
from oscarpy.storage.errors import (
    BucketNotEmpty,
    BucketNotFound,
    ChecksumMismatch,
    InvalidBucketName,
    InvalidObjectKey,
    InvalidPart,
    InvalidPartOrder,
    ObjectKeyTooLong,
    ObjectNotFound,
    PartTooSmall,
    StorageError,
    UploadNotFound,
    VersionNotFound,
)
from oscarpy.storage.events import EventKind, ObjectEvent, fetch_events
from oscarpy.storage.providers.base import ObjectInfo
from oscarpy.storage.rows import (
    OBJECT_COLUMNS,
    DriverStatements,
    SessionRows,
    VersionedWrite,
    WriteCondition,
    write_object_row,
)
from oscarpy.storage.tables import BucketRow, ObjectRow, PartRow, UploadRow, VersionRow

log = logging.getLogger(__name__)

MAX_KEY_BYTES = 1024
MIN_PART_SIZE = 5 * 1024 * 1024
DEFAULT_CONTENT_TYPE = "binary/octet-stream"
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_ADDRESS = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_PAGE = 1000
_BACKGROUND_REMOVAL_BYTES = 16 * 1024 * 1024
_remover = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blob-removal")


@dataclass(frozen=True)
class ObjectDetails(ObjectInfo):
    """Everything the store knows about one committed object."""

    content_type: str = DEFAULT_CONTENT_TYPE
    metadata: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    last_modified: datetime = field(default_factory=utcnow)
    blob_id: str = field(default="", repr=False)
    part_sizes: tuple[int, ...] = ()
    """The sizes of the parts of an object completed from a multipart upload."""
    checksum: Checksum | None = None
    version_id: str | None = None
    """None for S3's "null" version."""
    delete_marker: bool = False
    """A delete marker of a versioned bucket (then it has no bytes and no blob)."""


@dataclass(frozen=True)
class VersionEntry:
    """One entry of ListObjectVersions: a version or a delete marker."""

    details: ObjectDetails
    is_latest: bool


VERSIONING_STATES = ("Enabled", "Suspended")


@dataclass
class _PendingWrite:
    """One object write waiting for a group commit, and its outcome."""

    details: ObjectDetails
    values: dict[str, Any]
    record_event: bool
    condition: WriteCondition | None = None
    done: bool = False
    error: BaseException | None = None
    freed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BucketInfo:
    name: str
    created_at: datetime


@dataclass(frozen=True)
class UploadInfo:
    upload_id: str
    bucket: str
    key: str
    initiated_at: datetime
    content_type: str = DEFAULT_CONTENT_TYPE
    metadata: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    checksum: Checksum | None = None
    """The algorithm and type (its value empty) every part is checked with."""


@dataclass(frozen=True)
class PartInfo:
    part_number: int
    size: int
    etag: str
    last_modified: datetime
    checksum: Checksum | None = None


def validate_bucket_name(name: str) -> None:
    if not _BUCKET_NAME.fullmatch(name) or ".." in name or _IP_ADDRESS.match(name):
        raise InvalidBucketName(
            f"invalid bucket name {name!r}: use 3-63 lowercase letters, digits, '.' and '-', "
            "starting and ending with a letter or digit"
        )


def validate_key(key: str) -> None:
    if not key:
        raise InvalidObjectKey("an object key cannot be empty")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise ObjectKeyTooLong(f"object key longer than {MAX_KEY_BYTES} bytes in UTF-8")
    if "\x00" in key:
        raise InvalidObjectKey("object key holds a NUL character")


def successor(prefix: str) -> str | None:
    """The least string above every string that starts with `prefix` (None if there is none):
    `prefix` with its last character incremented, dropping trailing U+10FFFF."""
    trimmed = prefix.rstrip("\U0010ffff")
    if not trimmed:
        return None
    following = ord(trimmed[-1]) + 1
    if 0xD800 <= following <= 0xDFFF:  # surrogates are not characters of a stored key
        following = 0xE000
    return trimmed[:-1] + chr(following)


def starting_with(column: InstrumentedAttribute[str], prefix: str) -> list[ColumnElement[bool]]:
    """The values of `column` that start with `prefix` are exactly those in [prefix,
    successor): one index range (LIKE would be case-insensitive on SQLite, and scan)."""
    end = successor(prefix)
    return [column >= prefix] if end is None else [column >= prefix, column < end]


def multipart_etag(part_etags: list[str]) -> str:
    """The S3 ETag of a multipart object: MD5 of the concatenated binary part MD5s, and a count."""
    digest = hashlib.md5(usedforsecurity=False)
    for etag in part_etags:
        digest.update(bytes.fromhex(etag))
    return f"{digest.hexdigest()}-{len(part_etags)}"


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes for what was stored in UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _details(row: ObjectRow | VersionRow) -> ObjectDetails:
    return ObjectDetails(
        bucket=row.bucket,
        key=row.key,
        size=row.size,
        etag=row.etag,
        content_type=row.content_type,
        metadata=dict(row.user_metadata or {}),
        headers=dict(row.headers or {}),
        last_modified=_aware(row.last_modified),
        blob_id=row.blob_id or "",
        part_sizes=tuple(row.part_sizes or ()),
        checksum=Checksum.from_json(row.checksum),
        version_id=row.version_id,
        delete_marker=isinstance(row, VersionRow) and row.delete_marker,
    )


def _archived(row: ObjectRow) -> VersionRow:
    """The current version `row` as a noncurrent one."""
    return VersionRow(
        bucket=row.bucket,
        key=row.key,
        delete_marker=False,
        **{name: getattr(row, name) for name in OBJECT_COLUMNS},
    )


def new_version_id() -> str:
    return uuid.uuid4().hex


def _upload_info(row: UploadRow) -> UploadInfo:
    return UploadInfo(
        upload_id=row.upload_id,
        bucket=row.bucket,
        key=row.key,
        initiated_at=_aware(row.initiated_at),
        content_type=row.content_type,
        metadata=dict(row.user_metadata or {}),
        headers=dict(row.headers or {}),
        checksum=Checksum.from_json(row.checksum),
    )


def _upload_checksum(
    upload: UploadInfo,
    chosen: list[PartRow],
    claimed: dict[int, str],
    expected: str | None,
) -> Checksum | None:
    """The checksum of the object the parts make, of the upload's algorithm and type; checks
    what the client claims of the parts and of the whole."""
    stored = [Checksum.from_json(row.checksum) for row in chosen]
    for row, part in zip(chosen, stored, strict=True):
        claim = claimed.get(row.part_number)
        if claim is not None and (part is None or part.value != claim):
            raise InvalidPart(f"part {row.part_number}'s checksum does not match the one listed")
    wanted = upload.checksum
    if wanted is None:
        # Parts sent without checksums got S3's default one each: so does the whole object.
        default = Checksum(checksums.DEFAULT, "", checksums.FULL_OBJECT)
        if not all(part is not None and part.algorithm == default.algorithm for part in stored):
            return None
        wanted, expected = default, None
    values: list[str] = []
    for row, part in zip(chosen, stored, strict=True):
        if part is None or part.algorithm != wanted.algorithm:
            raise InvalidPart(f"part {row.part_number} has no {wanted.algorithm} checksum")
        values.append(part.value)
    if wanted.type == checksums.COMPOSITE:
        value = checksums.composite(wanted.algorithm, values)
    else:
        value = checksums.combine(
            wanted.algorithm, [(part, row.size) for part, row in zip(values, chosen, strict=True)]
        )
    if expected is not None and expected.split("-")[0] != value.split("-")[0]:
        raise ChecksumMismatch(
            f"the {wanted.algorithm.upper()} you specified did not match the calculated checksum"
        )
    return Checksum(wanted.algorithm, value, wanted.type, tuple(values))


def _newest_version(
    session: Session, bucket: str, key: str, version_id: str | None | bool = False
) -> VersionRow | None:
    """The newest noncurrent version or delete marker of `key` (of `version_id`, None for
    "null", if one is given)."""
    query = select(VersionRow).where(VersionRow.bucket == bucket, VersionRow.key == key)
    if version_id is not False:
        assert not isinstance(version_id, bool)
        query = query.where(_version_is(version_id))
    return session.scalars(query.order_by(VersionRow.id.desc()).limit(1)).first()


def _version_is(version_id: str | None) -> ColumnElement[bool]:
    return (
        VersionRow.version_id.is_(None)
        if version_id is None
        else VersionRow.version_id == version_id
    )


class ObjectStore:
    """Buckets and objects of the embedded storage, used in process and by the S3 front-end."""

    def __init__(self, database: Database, data_dir: Path, writer: str | None = None) -> None:
        """`writer` is the server instance's token: it tags the blobs this process writes."""
        self.database = database
        self.blobs = Blobs(data_dir / "blobs", writer)
        self._listeners: list[Callable[[], None]] = []
        self._listeners_lock = threading.Lock()
        self._queue: list[_PendingWrite] = []
        self._queue_lock = threading.Lock()
        self._driver_statements: DriverStatements | None = None

    # -- maintenance -----------------------------------------------------------------------

    def recover(self, live_writers: Collection[str] = ()) -> int:
        """Remove what crashed writers left: half-received uploads and unreferenced blobs.

        Blobs of this store and of `live_writers` (the tokens of the server instances still
        alive) are kept: one of theirs may be written and not yet committed, and so look
        unreferenced. Everything of a dead writer is provably orphaned.
        """
        live = {writer[:TAG_LENGTH] for writer in live_writers} | {self.blobs.tag}
        removed = self.blobs.clear_incoming(live)
        candidates = {blob for blob in self.blobs.all_ids() if tag_of(blob) not in live}
        if candidates:
            with self.database.session() as session:
                referenced = set(session.scalars(select(ObjectRow.blob_id)))
                referenced.update(session.scalars(select(PartRow.blob_id)))
                referenced.update(
                    session.scalars(
                        select(VersionRow.blob_id).where(VersionRow.blob_id.is_not(None))
                    )
                )
            for blob_id in candidates - referenced:
                self.blobs.remove(blob_id)
                removed += 1
        if removed:
            log.info("removed %d blob(s) left by an interrupted write", removed)
        return removed

    def add_commit_listener(self, callback: Callable[[], None]) -> None:
        """Call `callback` (without arguments, in the committing thread) after every commit
        that recorded object events, so that a consumer can fetch them at once."""
        with self._listeners_lock:
            self._listeners.append(callback)

    def events_after(self, after_id: int, limit: int = 1000) -> list[ObjectEvent]:
        """The recorded events after `after_id`, oldest first (see `events.fetch_events`)."""
        with self.database.session() as session:
            return fetch_events(session, after_id, limit)

    def counts(self) -> tuple[int, int]:
        """How many buckets and objects the store holds."""
        with self.database.session() as session:
            buckets = session.scalar(select(func.count()).select_from(BucketRow)) or 0
            objects = session.scalar(select(func.count()).select_from(ObjectRow)) or 0
        return int(buckets), int(objects)

    # -- buckets ---------------------------------------------------------------------------

    def create_bucket(self, name: str) -> bool:
        """Create the bucket; False if it already existed."""
        validate_bucket_name(name)
        try:
            with self.database.writing() as session:
                if session.get(BucketRow, name) is not None:
                    return False
                session.add(BucketRow(name=name, created_at=utcnow()))
        except IntegrityError:  # created by a concurrent writer in between
            return False
        return True

    def ensure_bucket(self, name: str) -> None:
        self.create_bucket(name)

    def bucket_exists(self, name: str) -> bool:
        with self.database.session() as session:
            return session.get(BucketRow, name) is not None

    def list_buckets(self) -> list[str]:
        return [bucket.name for bucket in self.bucket_details()]

    def bucket_details(
        self, *, prefix: str = "", after: str = "", limit: int | None = None
    ) -> list[BucketInfo]:
        """Buckets by name: those starting with `prefix`, after `after`, at most `limit`."""
        query = select(BucketRow)
        if prefix:
            query = query.where(*starting_with(BucketRow.name, prefix))
        if after:
            query = query.where(BucketRow.name > after)
        query = query.order_by(BucketRow.name)
        if limit is not None:
            query = query.limit(limit)
        with self.database.session() as session:
            return [BucketInfo(row.name, _aware(row.created_at)) for row in session.scalars(query)]

    def delete_bucket(self, name: str, force: bool = False) -> None:
        """Delete an empty bucket; with `force`, its objects and uploads first.

        Raises `BucketNotFound`, or `BucketNotEmpty` when it holds objects and `force` is off.
        """
        freed: list[str] = []
        recorded = False
        with self.database.writing() as session:
            if session.get(BucketRow, name) is None:
                raise BucketNotFound(f"bucket {name!r} does not exist")
            holds = session.scalar(select(ObjectRow.key).where(ObjectRow.bucket == name).limit(1))
            if holds is None:
                holds = session.scalar(
                    select(VersionRow.key).where(VersionRow.bucket == name).limit(1)
                )
            if holds is not None and not force:
                raise BucketNotEmpty(f"bucket {name!r} is not empty")
            for row in session.scalars(select(ObjectRow).where(ObjectRow.bucket == name)):
                self._record(session, "deleted", row.bucket, row.key, row.size, row.etag)
                freed.append(row.blob_id)
                recorded = True
            session.execute(delete(ObjectRow).where(ObjectRow.bucket == name))
            versions = select(VersionRow.blob_id).where(
                VersionRow.bucket == name, VersionRow.blob_id.is_not(None)
            )
            freed.extend(blob for blob in session.scalars(versions) if blob)
            session.execute(delete(VersionRow).where(VersionRow.bucket == name))
            uploads = select(UploadRow.upload_id).where(UploadRow.bucket == name)
            parts = select(PartRow).where(PartRow.upload_id.in_(uploads))
            freed.extend(part.blob_id for part in session.scalars(parts))
            session.execute(delete(PartRow).where(PartRow.upload_id.in_(uploads)))
            session.execute(delete(UploadRow).where(UploadRow.bucket == name))
            session.execute(delete(BucketRow).where(BucketRow.name == name))
        self._free(freed)
        if recorded:
            self._notify()

    def ensure_folder(self, bucket: str, folder: str) -> None:
        """Create the zero-byte `folder/` marker that MinIO and OSCAR use for folders.

        No event is recorded: the marker is platform bookkeeping, not a user's upload.
        """
        folder = folder.strip("/")
        if not folder:
            return
        key = folder + "/"
        if self.head(bucket, key) is not None:
            return
        writer = self.blobs.writer()
        self._commit(bucket, key, writer.finish(), record_event=False)

    # -- objects ---------------------------------------------------------------------------

    def writer(self, *, sha256: bool = False) -> BlobWriter:
        """A writer for the bytes of a new object or part; pass its result to `commit_object`."""
        return self.blobs.writer(sha256=sha256)

    def put_file(
        self,
        bucket: str,
        key: str,
        source: Path,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ObjectDetails:
        """Copy the file at `source` in as `key`, replacing any earlier version."""
        validate_key(key)
        with open(source, "rb") as handle:
            blob = self.write_stream(handle)
        return self.commit_object(bucket, key, blob, content_type=content_type, metadata=metadata)

    def write_stream(self, source: BinaryIO) -> WrittenBlob:
        """A new blob of the bytes `source` reads, with S3's default checksum (see
        `checksums.DEFAULT`); pass it to `commit_object`."""
        writer = self.blobs.writer()
        computing = checksums.running(checksums.DEFAULT)
        writer.track(computing)
        try:
            writer.copy_from(source)
        except BaseException:
            writer.abort()
            raise
        default = Checksum(checksums.DEFAULT, checksums.encode(computing.digest()))
        return replace(writer.finish(), checksum=default)

    def put_bytes(
        self, bucket: str, key: str, data: bytes, content_type: str | None = None
    ) -> ObjectDetails:
        validate_key(key)
        default = Checksum(checksums.DEFAULT, checksums.of_bytes(checksums.DEFAULT, data))
        blob = replace(self.blobs.write_whole(data), checksum=default)
        return self.commit_object(bucket, key, blob, content_type=content_type)

    def commit_object(
        self,
        bucket: str,
        key: str,
        blob: WrittenBlob,
        *,
        etag: str | None = None,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        condition: WriteCondition | None = None,
    ) -> ObjectDetails:
        """Make a written blob the object `key` and record its "created" event, atomically
        (and only if `condition` holds when it commits).

        On any error the blob is removed: nothing of the write stays visible.
        """
        return self._commit(
            bucket,
            key,
            blob,
            etag=etag,
            content_type=content_type,
            metadata=metadata,
            headers=headers,
            condition=condition,
        )

    def head(self, bucket: str, key: str) -> ObjectDetails | None:
        with self.database.session() as session:
            row = session.get(ObjectRow, (bucket, key))
            return None if row is None else _details(row)

    def blob_path(self, bucket: str, key: str) -> Path:
        """The file holding the committed object, to copy from; it is never modified in place,
        but a later write of the same key removes it (copy or open it, don't keep the path)."""
        found = self.head(bucket, key)
        if found is None:
            raise ObjectNotFound(f"object {key!r} not found in bucket {bucket!r}")
        return self.blobs.path(found.blob_id)

    def open_object(self, bucket: str, key: str) -> tuple[ObjectDetails, BinaryIO]:
        """The object and an open handle on its bytes, consistent with each other even when a
        concurrent write replaces the object (the handle keeps the old bytes readable)."""
        for _attempt in range(5):
            found = self.head(bucket, key)
            if found is None:
                break
            try:
                return found, open(self.blobs.path(found.blob_id), "rb")  # noqa: SIM115
            except FileNotFoundError:
                continue  # replaced between the lookup and the open; look again
        if not self.bucket_exists(bucket):
            raise BucketNotFound(f"bucket {bucket!r} does not exist")
        raise ObjectNotFound(f"object {key!r} not found in bucket {bucket!r}")

    def list_objects(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix`, in key order."""
        after = ""
        while True:
            page = self.list_page(bucket, prefix=prefix, after=after, limit=_PAGE)
            yield from page
            if len(page) < _PAGE:
                return
            after = page[-1].key

    def list_page(
        self, bucket: str, *, prefix: str = "", after: str = "", limit: int = _PAGE
    ) -> list[ObjectDetails]:
        """Up to `limit` objects with keys starting with `prefix` and sorting after `after`."""
        query = select(ObjectRow).where(ObjectRow.bucket == bucket)
        if prefix:
            query = query.where(*starting_with(ObjectRow.key, prefix))
        if after:
            query = query.where(ObjectRow.key > after)
        with self.database.session() as session:
            rows = session.scalars(query.order_by(ObjectRow.key).limit(limit))
            return [_details(row) for row in rows]

    def list_grouped(
        self, bucket: str, *, prefix: str, delimiter: str, after: str = "", limit: int = _PAGE
    ) -> list[ObjectDetails | str]:
        """Up to `limit` entries after `after`, in key order, of the keys starting with
        `prefix`: an object, or, for keys holding `delimiter` after the prefix, their common
        prefix (up to and including the delimiter) once.

        One query walks the index: after each common prefix it seeks straight past every key
        under it (a recursive query, one index seek per entry), so a page costs the same
        whatever the number of keys under each prefix or in the bucket.
        """
        beyond = successor(delimiter)
        if not delimiter or beyond is None:
            raise ValueError(f"cannot group by the delimiter {delimiter!r}")
        rest = len(prefix) + 1  # where, in characters from 1, a key's part after prefix starts
        start, skip = prefix, ""
        if after >= prefix:
            start, skip = after, after
            cut = after.find(delimiter, len(prefix))
            if after.startswith(prefix) and 0 <= cut == len(after) - len(delimiter):
                # `after` is a common prefix we returned: resume past every key under it.
                start = after[: -len(delimiter)] + beyond
        end = successor(prefix) if prefix else None
        position = "instr(substr({key}, :rest), :delimiter)"
        if self.database.dialect == "postgresql":
            position = "strpos(substr({key}, :rest), :delimiter)"
        within = "AND key < :end" if end is not None else ""
        statement = text(
            f"""
            WITH RECURSIVE walk(n, key) AS (
                SELECT 0, (
                    SELECT key FROM objects
                    WHERE bucket = :bucket AND key >= :start AND key != :skip {within}
                    ORDER BY key LIMIT 1
                )
                UNION ALL
                SELECT walk.n + 1, (
                    SELECT key FROM objects
                    WHERE bucket = :bucket {within} AND key != walk.key AND key >= CASE
                        WHEN {position.format(key="walk.key")} > 0
                        THEN substr(
                            walk.key, 1, :before_delimiter + {position.format(key="walk.key")}
                        ) || :beyond
                        ELSE walk.key
                    END
                    ORDER BY key LIMIT 1
                )
                FROM walk WHERE walk.key IS NOT NULL AND walk.n < :last
            )
            SELECT key FROM walk WHERE key IS NOT NULL ORDER BY n
            """
        )
        parameters = {
            "bucket": bucket,
            "start": start,
            "skip": skip,
            "end": end,
            "rest": rest,
            "delimiter": delimiter,
            # A common prefix ends with the delimiter: the keys under it end before the key
            # that has `beyond` in the delimiter's place.
            "before_delimiter": len(prefix) - 1,
            "beyond": beyond,
            "last": limit - 1,
        }
        with self.database.session() as session:
            keys = list(session.scalars(statement, parameters))
            # (common prefix, "") or ("", key of an object)
            walked = []
            for found in keys:
                cut = found.find(delimiter, len(prefix))
                walked.append((found[: cut + len(delimiter)], "") if cut >= 0 else ("", found))
            objects = [found for _, found in walked if found]
            details: dict[str, ObjectDetails] = {}
            if objects:
                query = select(ObjectRow).where(
                    ObjectRow.bucket == bucket, ObjectRow.key.in_(objects)
                )
                details = {row.key: _details(row) for row in session.scalars(query)}
        # An object deleted between the two queries is left out.
        return [common or details[found] for common, found in walked if common or found in details]

    def delete_object(self, bucket: str, key: str) -> bool:
        """Delete the object; False if there was none."""
        return bool(self.delete_objects(bucket, [key]))

    def delete_objects(self, bucket: str, keys: list[str]) -> list[str]:
        """Delete the objects in one transaction; returns the keys that existed. In a
        versioned bucket each gets a delete marker and its current version is kept."""
        freed: list[str] = []
        deleted: list[str] = []
        with self.database.writing() as session:
            bucket_row = session.get(BucketRow, bucket)
            if bucket_row is None:
                raise BucketNotFound(f"bucket {bucket!r} does not exist")
            # All key locks first, in one order: taking one after the event lock could deadlock
            # with a concurrent writer holding that key and waiting for the event lock.
            for key in sorted(set(keys)):
                self._lock_key(session, bucket, key)
            for key in dict.fromkeys(keys):
                if bucket_row.versioning:
                    existed, replaced = self._delete_versioned(
                        session, bucket, key, bucket_row.versioning
                    )
                    freed.extend(replaced)
                    if existed:
                        deleted.append(key)
                    continue
                row = session.get(ObjectRow, (bucket, key))
                if row is None:
                    continue
                self._record(session, "deleted", bucket, key, row.size, row.etag)
                freed.append(row.blob_id)
                deleted.append(key)
                session.delete(row)
        self._free(freed)
        if deleted:
            self._notify()
        return deleted

    def copy_object(
        self,
        source_bucket: str,
        source_key: str,
        bucket: str,
        key: str,
        *,
        replace: tuple[str | None, dict[str, str], dict[str, str]] | None = None,
        condition: WriteCondition | None = None,
        checksum_algorithm: str | None = None,
        source_version: str | None | bool = False,
    ) -> ObjectDetails:
        """Copy an object (or its `source_version`: None for "null", False for the current
        one); `replace` = (content type, metadata, headers) replaces the source's (S3's REPLACE
        metadata directive), else they are copied. The copy keeps the source's checksum, or
        gets a new full-object one of `checksum_algorithm`."""
        validate_key(key)
        if source_version is False:
            source, handle = self.open_object(source_bucket, source_key)
        else:
            assert not isinstance(source_version, bool)
            source, opened = self.open_version(source_bucket, source_key, source_version)
            if opened is None:
                raise VersionNotFound(f"version {source_version!r} is a delete marker")
            handle = opened
        writer = self.blobs.writer()
        checksum = source.checksum
        if checksum is None and checksum_algorithm is None:
            checksum_algorithm = checksums.DEFAULT  # S3 gives every new object a checksum
        computing = None
        if checksum_algorithm is not None and (
            checksum is None or checksum.algorithm != checksum_algorithm
        ):
            computing = checksums.running(checksum_algorithm)
            writer.track(computing)
        try:
            with handle:
                writer.copy_from(handle)
        except BaseException:
            writer.abort()
            raise
        content_type, metadata, headers = replace or (
            source.content_type,
            source.metadata,
            source.headers,
        )
        if computing is not None and checksum_algorithm is not None:
            checksum = Checksum(checksum_algorithm, checksums.encode(computing.digest()))
        return self._commit(
            bucket,
            key,
            writer.finish(),
            etag=source.etag,
            content_type=content_type,
            metadata=metadata,
            headers=headers,
            condition=condition,
            part_sizes=source.part_sizes,
            checksum=checksum,
        )

    # -- multipart uploads ------------------------------------------------------------------

    def create_upload(
        self,
        bucket: str,
        key: str,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        checksum: Checksum | None = None,
    ) -> str:
        """A new upload; with `checksum` (its value empty), every part is checked with that
        algorithm and the object gets a checksum of that type."""
        validate_key(key)
        upload_id = uuid.uuid4().hex
        with self.database.writing() as session:
            if session.get(BucketRow, bucket) is None:
                raise BucketNotFound(f"bucket {bucket!r} does not exist")
            session.add(
                UploadRow(
                    upload_id=upload_id,
                    bucket=bucket,
                    key=key,
                    content_type=content_type or DEFAULT_CONTENT_TYPE,
                    user_metadata=metadata or {},
                    headers=headers or {},
                    checksum=checksum.to_json() if checksum is not None else None,
                    initiated_at=utcnow(),
                )
            )
        return upload_id

    def get_upload(self, bucket: str, key: str, upload_id: str) -> UploadInfo:
        with self.database.session() as session:
            row = session.get(UploadRow, upload_id)
            if row is None or row.bucket != bucket or row.key != key:
                raise UploadNotFound(f"upload {upload_id!r} does not exist")
            return _upload_info(row)

    def commit_part(
        self, bucket: str, key: str, upload_id: str, part_number: int, blob: WrittenBlob
    ) -> str:
        """Record a written blob as one part (replacing an earlier one); returns its ETag."""
        replaced: str | None = None
        try:
            with self.database.writing() as session:
                upload = session.get(UploadRow, upload_id)
                if upload is None or upload.bucket != bucket or upload.key != key:
                    raise UploadNotFound(f"upload {upload_id!r} does not exist")
                row = session.get(PartRow, (upload_id, part_number))
                if row is None:
                    row = PartRow(upload_id=upload_id, part_number=part_number)
                    session.add(row)
                else:
                    replaced = row.blob_id
                row.blob_id = blob.blob_id
                row.size = blob.size
                row.etag = blob.md5
                row.last_modified = utcnow()
                row.checksum = blob.checksum.to_json() if blob.checksum is not None else None
        except BaseException:
            self.blobs.remove(blob.blob_id)
            raise
        if replaced:
            self.blobs.remove(replaced)
        return blob.md5

    def list_parts(self, upload_id: str, after: int = 0, limit: int = _PAGE) -> list[PartInfo]:
        query = (
            select(PartRow)
            .where(PartRow.upload_id == upload_id, PartRow.part_number > after)
            .order_by(PartRow.part_number)
            .limit(limit)
        )
        with self.database.session() as session:
            return [
                PartInfo(
                    row.part_number,
                    row.size,
                    row.etag,
                    _aware(row.last_modified),
                    Checksum.from_json(row.checksum),
                )
                for row in session.scalars(query)
            ]

    def list_uploads(
        self,
        bucket: str,
        *,
        prefix: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
        limit: int = _PAGE,
    ) -> list[UploadInfo]:
        query = select(UploadRow).where(UploadRow.bucket == bucket)
        if prefix:
            query = query.where(*starting_with(UploadRow.key, prefix))
        if key_marker:
            after_key = UploadRow.key > key_marker
            if upload_id_marker:
                same_key = (UploadRow.key == key_marker) & (UploadRow.upload_id > upload_id_marker)
                after_key = after_key | same_key
            query = query.where(after_key)
        query = query.order_by(UploadRow.key, UploadRow.upload_id).limit(limit)
        with self.database.session() as session:
            return [_upload_info(row) for row in session.scalars(query)]

    def complete_upload(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        parts: list[tuple[int, str]],
        condition: WriteCondition | None = None,
        *,
        part_checksums: dict[int, str] | None = None,
        expected_checksum: str | None = None,
    ) -> ObjectDetails:
        """Join the named parts (number, ETag) into the object; the upload ends.

        `part_checksums` are the checksums the client lists for parts, `expected_checksum` the
        one it declares for the object: each must be the stored one.

        Raises `InvalidPartOrder`, `InvalidPart` (unknown part, wrong ETag or checksum),
        `PartTooSmall`, `ChecksumMismatch`.
        """
        upload = self.get_upload(bucket, key, upload_id)
        if not parts:
            raise InvalidPart("a completion must name at least one part")
        numbers = [number for number, _ in parts]
        if numbers != sorted(set(numbers)):
            raise InvalidPartOrder("parts must be listed in ascending order, each once")
        with self.database.session() as session:
            stored = {
                row.part_number: row
                for row in session.scalars(select(PartRow).where(PartRow.upload_id == upload_id))
            }
        chosen: list[PartRow] = []
        for position, (number, etag) in enumerate(parts):
            row = stored.get(number)
            if row is None or row.etag != etag.strip('"').lower():
                raise InvalidPart(f"part {number} was not uploaded or its ETag does not match")
            if row.size < MIN_PART_SIZE and position < len(parts) - 1:
                raise PartTooSmall(f"part {number} is smaller than 5 MiB and not the last")
            chosen.append(row)
        checksum = _upload_checksum(upload, chosen, part_checksums or {}, expected_checksum)
        writer = self.blobs.concatenate([row.blob_id for row in chosen])
        blob = writer.finish()
        details = self._commit(
            bucket,
            key,
            blob,
            etag=multipart_etag([row.etag for row in chosen]),
            content_type=upload.content_type,
            metadata=upload.metadata,
            headers=upload.headers,
            ending_upload=upload_id,
            condition=condition,
            part_sizes=tuple(row.size for row in chosen),
            checksum=checksum,
        )
        return details

    def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        with self.database.writing() as session:
            upload = session.get(UploadRow, upload_id)
            if upload is None or upload.bucket != bucket or upload.key != key:
                raise UploadNotFound(f"upload {upload_id!r} does not exist")
            freed = self._end_upload(session, upload_id)
        self._free(freed)

    # -- versioning ------------------------------------------------------------------------

    def versioning(self, bucket: str) -> str | None:
        """The bucket's versioning status: None (never enabled), "Enabled" or "Suspended"."""
        with self.database.session() as session:
            row = session.get(BucketRow, bucket)
            if row is None:
                raise BucketNotFound(f"bucket {bucket!r} does not exist")
            return row.versioning

    def set_versioning(self, bucket: str, status: str) -> None:
        if status not in VERSIONING_STATES:
            raise ValueError(f"versioning status must be one of {VERSIONING_STATES}")
        with self.database.writing() as session:
            row = session.get(BucketRow, bucket)
            if row is None:
                raise BucketNotFound(f"bucket {bucket!r} does not exist")
            row.versioning = status

    def open_version(
        self, bucket: str, key: str, version_id: str | None
    ) -> tuple[ObjectDetails, BinaryIO | None]:
        """A version of the object (None: the "null" version) and an open handle on its bytes;
        a delete marker has no handle. Raises `VersionNotFound`."""
        for _attempt in range(5):
            found = self.find_version(bucket, key, version_id)
            if found.delete_marker:
                return found, None
            try:
                return found, open(self.blobs.path(found.blob_id), "rb")  # noqa: SIM115
            except FileNotFoundError:
                continue  # removed between the lookup and the open; look again
        raise VersionNotFound(f"version {version_id!r} of {key!r} not found")

    def find_version(self, bucket: str, key: str, version_id: str | None) -> ObjectDetails:
        """A version's details (None: the "null" version). Raises `VersionNotFound`."""
        with self.database.session() as session:
            if session.get(BucketRow, bucket) is None:
                raise BucketNotFound(f"bucket {bucket!r} does not exist")
            current = session.get(ObjectRow, (bucket, key))
            if current is not None and current.version_id == version_id:
                return _details(current)
            row = _newest_version(session, bucket, key, version_id)
            if row is None:
                raise VersionNotFound(f"version {version_id!r} of {key!r} not found")
            return _details(row)

    def latest_delete_marker(self, bucket: str, key: str) -> ObjectDetails | None:
        """The delete marker that is the latest version of `key`, if one is."""
        with self.database.session() as session:
            if session.get(ObjectRow, (bucket, key)) is not None:
                return None
            row = _newest_version(session, bucket, key)
            return _details(row) if row is not None and row.delete_marker else None

    def delete_version(self, bucket: str, key: str, version_id: str | None) -> ObjectDetails | None:
        """Remove one version (or delete marker) for good; the next newest becomes the latest.
        Returns what was removed, None if there was no such version."""
        freed: list[str] = []
        removed: ObjectDetails | None = None
        with self.database.writing() as session:
            if session.get(BucketRow, bucket) is None:
                raise BucketNotFound(f"bucket {bucket!r} does not exist")
            self._lock_key(session, bucket, key)
            current = session.get(ObjectRow, (bucket, key))
            if current is not None and current.version_id == version_id:
                removed = _details(current)
                self._record(session, "deleted", bucket, key, current.size, current.etag)
                freed.append(current.blob_id)
                session.delete(current)
                session.flush()
            else:
                row = _newest_version(session, bucket, key, version_id)
                if row is not None:
                    removed = _details(row)
                    if row.blob_id:
                        freed.append(row.blob_id)
                    session.delete(row)
                    session.flush()
            if removed is not None:
                self._promote(session, bucket, key)
        self._free(freed)
        if removed is not None and not removed.delete_marker:
            self._notify()
        return removed

    def list_versions(
        self,
        bucket: str,
        *,
        prefix: str = "",
        key_marker: str = "",
        version_marker: str | None = None,
        start: str = "",
        limit: int = _PAGE,
    ) -> list[VersionEntry]:
        """Up to `limit` versions and delete markers by key, newest first within a key, after
        (`key_marker`, `version_marker`): after every version of `key_marker` when
        `version_marker` is None, else after that version of it (\"\" stands for null); and
        of keys from `start` on."""
        with self.database.session() as session:
            objects = select(ObjectRow).where(ObjectRow.bucket == bucket, ObjectRow.key >= start)
            versions = select(VersionRow).where(
                VersionRow.bucket == bucket, VersionRow.key >= start
            )
            if prefix:
                objects = objects.where(*starting_with(ObjectRow.key, prefix))
                versions = versions.where(*starting_with(VersionRow.key, prefix))
            if key_marker:
                objects = objects.where(ObjectRow.key > key_marker)
                after = VersionRow.key > key_marker
                if version_marker is not None:
                    marker = version_marker or None
                    current = session.get(ObjectRow, (bucket, key_marker))
                    if current is not None and current.version_id == marker:
                        after = after | (VersionRow.key == key_marker)
                    else:
                        position = session.scalar(
                            select(func.max(VersionRow.id)).where(
                                VersionRow.bucket == bucket,
                                VersionRow.key == key_marker,
                                _version_is(marker),
                            )
                        )
                        if position is not None:
                            after = after | (
                                (VersionRow.key == key_marker) & (VersionRow.id < position)
                            )
                versions = versions.where(after)
            current_rows = list(session.scalars(objects.order_by(ObjectRow.key).limit(limit)))
            version_rows = list(
                session.scalars(
                    versions.order_by(VersionRow.key, VersionRow.id.desc()).limit(limit)
                )
            )
            keys = {row.key for row in version_rows}
            with_current = set(
                session.scalars(
                    select(ObjectRow.key).where(ObjectRow.bucket == bucket, ObjectRow.key.in_(keys))
                )
            )
            newest_rows = session.execute(
                select(VersionRow.key, func.max(VersionRow.id))
                .where(VersionRow.bucket == bucket, VersionRow.key.in_(keys))
                .group_by(VersionRow.key)
            )
            newest: dict[str, int] = {row[0]: row[1] for row in newest_rows}
        entries = [(row.key, 0, VersionEntry(_details(row), True)) for row in current_rows]
        entries += [
            (
                row.key,
                1,
                VersionEntry(
                    _details(row),
                    row.key not in with_current and newest.get(row.key) == row.id,
                ),
            )
            for row in version_rows
        ]
        # Stable: within a key the current version first, then the archive newest first.
        entries.sort(key=lambda entry: (entry[0].encode("utf-8", "surrogatepass"), entry[1]))
        return [entry for _, _, entry in entries[:limit]]

    def _write_version(
        self,
        session: Session,
        details: ObjectDetails,
        values: dict[str, Any],
        record_event: bool,
        condition: WriteCondition | None,
        status: str,
    ) -> tuple[str | None, list[str]]:
        """Write the new current version of a versioned bucket's key: the one it replaces
        becomes noncurrent, except a "null" one while versioning is suspended (replaced, as
        S3 does). Returns the new version id and the blobs freed."""
        bucket, key = details.bucket, details.key
        current = session.get(ObjectRow, (bucket, key))
        if condition is not None:
            condition.check(None if current is None else current.etag, key)
        version_id = new_version_id() if status == "Enabled" else None
        freed: list[str] = []
        if version_id is None:
            freed.extend(self._drop_null_versions(session, bucket, key))
        if current is not None:
            if current.version_id is None and version_id is None:
                freed.append(current.blob_id)
            else:
                session.add(_archived(current))
            for name, value in values.items():
                setattr(current, name, value)
        else:
            current = ObjectRow(bucket=bucket, key=key, **values)
            session.add(current)
        current.version_id = version_id
        if record_event:
            self._record(session, "created", bucket, key, details.size, details.etag)
        return version_id, freed

    def _delete_versioned(
        self, session: Session, bucket: str, key: str, status: str
    ) -> tuple[bool, list[str]]:
        """DeleteObject without a version in a versioned bucket: the current version becomes
        noncurrent and a delete marker the latest ("null" while suspended). Returns whether
        there was a current version, and the blobs freed."""
        current = session.get(ObjectRow, (bucket, key))
        marker_id = new_version_id() if status == "Enabled" else None
        freed: list[str] = []
        if marker_id is None:
            freed.extend(self._drop_null_versions(session, bucket, key))
        if current is not None:
            self._record(session, "deleted", bucket, key, current.size, current.etag)
            if current.version_id is None and marker_id is None:
                freed.append(current.blob_id)
            else:
                session.add(_archived(current))
            session.delete(current)
            session.flush()
        session.add(
            VersionRow(
                bucket=bucket,
                key=key,
                version_id=marker_id,
                delete_marker=True,
                blob_id=None,
                size=0,
                etag="",
                content_type="",
                user_metadata={},
                headers={},
                last_modified=utcnow(),
                part_sizes=None,
                checksum=None,
            )
        )
        return current is not None, freed

    def _drop_null_versions(self, session: Session, bucket: str, key: str) -> list[str]:
        """Remove the archived "null" version of `key` (at most one); returns its blob."""
        rows = list(
            session.scalars(
                select(VersionRow).where(
                    VersionRow.bucket == bucket,
                    VersionRow.key == key,
                    VersionRow.version_id.is_(None),
                )
            )
        )
        for row in rows:
            session.delete(row)
        session.flush()
        return [row.blob_id for row in rows if row.blob_id]

    def _promote(self, session: Session, bucket: str, key: str) -> None:
        """Without a current version, the newest noncurrent one becomes current (unless the
        newest is a delete marker, which stays the latest)."""
        if session.get(ObjectRow, (bucket, key)) is not None:
            return
        newest = _newest_version(session, bucket, key)
        if newest is None or newest.delete_marker:
            return
        session.add(
            ObjectRow(
                bucket=bucket,
                key=key,
                **{name: getattr(newest, name) for name in OBJECT_COLUMNS},
            )
        )
        session.delete(newest)

    # -- internals -------------------------------------------------------------------------

    def _lock_key(self, session: Session, bucket: str, key: str) -> None:
        """Serialise writers of one key on PostgreSQL (SQLite already serialises all writers),
        so that each sees the blob the previous one committed and removes it."""
        if self.database.dialect == "postgresql":
            session.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))"),
                {"name": f"{bucket}/{key}"},
            )

    def _record(
        self, session: Session, kind: EventKind, bucket: str, key: str, size: int, etag: str
    ) -> None:
        SessionRows(session.connection()).order_events()
        session.add(
            ObjectEvent(
                kind=kind, bucket=bucket, key=key, size=size, etag=etag, occurred_at=utcnow()
            )
        )

    def _end_upload(self, session: Session, upload_id: str) -> list[str]:
        parts = session.scalars(select(PartRow.blob_id).where(PartRow.upload_id == upload_id))
        freed = list(parts)
        session.execute(delete(PartRow).where(PartRow.upload_id == upload_id))
        session.execute(delete(UploadRow).where(UploadRow.upload_id == upload_id))
        return freed

    def _commit(
        self,
        bucket: str,
        key: str,
        blob: WrittenBlob,
        *,
        etag: str | None = None,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        record_event: bool = True,
        ending_upload: str | None = None,
        condition: WriteCondition | None = None,
        part_sizes: tuple[int, ...] = (),
        checksum: Checksum | None = None,
    ) -> ObjectDetails:
        """Commit `blob` as the object; its checksum is `checksum`, else the blob's own."""
        freed: list[str] = []
        checksum = checksum or blob.checksum
        details = ObjectDetails(
            bucket=bucket,
            key=key,
            size=blob.size,
            etag=etag or blob.md5,
            content_type=content_type or DEFAULT_CONTENT_TYPE,
            metadata=dict(metadata or {}),
            headers=dict(headers or {}),
            last_modified=utcnow(),
            blob_id=blob.blob_id,
            part_sizes=tuple(part_sizes),
            checksum=checksum,
        )
        values = {
            "blob_id": details.blob_id,
            "size": details.size,
            "etag": details.etag,
            "content_type": details.content_type,
            "user_metadata": details.metadata,
            "headers": details.headers,
            "last_modified": details.last_modified,
            "part_sizes": list(part_sizes) or None,
            "checksum": checksum.to_json() if checksum is not None else None,
            "version_id": None,
        }
        try:
            validate_key(key)
            grouped = ending_upload is None and self.database.write_lock is not None
            if grouped:
                pending = _PendingWrite(details, values, record_event, condition)
                try:
                    freed.extend(self._commit_grouped(pending))
                except VersionedWrite:
                    grouped = False  # written below, keeping the version it replaces
            if not grouped:
                with self.database.writing() as session:
                    if ending_upload is not None:
                        if session.get(UploadRow, ending_upload) is None:
                            raise UploadNotFound(f"upload {ending_upload!r} does not exist")
                        freed.extend(self._end_upload(session, ending_upload))
                    self._lock_key(session, bucket, key)
                    try:
                        freed.extend(
                            write_object_row(
                                SessionRows(session.connection()),
                                bucket,
                                key,
                                values,
                                record_event,
                                condition,
                            )
                        )
                    except VersionedWrite as versioned:
                        version_id, replaced = self._write_version(
                            session, details, values, record_event, condition, versioned.status
                        )
                        freed.extend(replaced)
                        details = replace(details, version_id=version_id)
        except BaseException:
            self.blobs.remove(blob.blob_id)
            raise
        self._free(freed)
        if record_event:
            self._notify()
        return details

    def _commit_grouped(self, pending: _PendingWrite) -> list[str]:
        """Group commit on SQLite: whichever writer holds the write lock commits every write
        queued so far in one transaction, so concurrent small PUTs share one commit instead of
        queueing for one each. Returns the blobs replaced by this write."""
        write_lock = self.database.write_lock
        assert write_lock is not None
        with self._queue_lock:
            self._queue.append(pending)
        with write_lock:
            if not pending.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._commit_batch(batch)
        if pending.error is not None:
            raise pending.error
        return pending.freed

    def _commit_batch(self, batch: list[_PendingWrite]) -> None:
        """One transaction on the SQLite driver's own connection (see `storage.rows`)."""
        if self._driver_statements is None:
            self._driver_statements = DriverStatements(self.database.engine.dialect)
        connection = self.database.engine.raw_connection()
        try:
            driver = cast(sqlite3.Connection, connection.driver_connection)
            cursor = driver.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                rows = self._driver_statements.rows(cursor)
                for pending in batch:
                    try:
                        # Only the checks (bucket, condition) raise StorageError, before
                        # anything of this write is written.
                        pending.freed = write_object_row(
                            rows,
                            pending.details.bucket,
                            pending.details.key,
                            pending.values,
                            pending.record_event,
                            pending.condition,
                        )
                    except (StorageError, VersionedWrite) as error:
                        pending.error = error
                driver.commit()
            except BaseException:
                driver.rollback()
                raise
        except Exception as error:
            for pending in batch:
                pending.freed = []
                if pending.error is None:
                    pending.error = StorageError(f"cannot commit the object: {error}")
        finally:
            connection.close()
            for pending in batch:
                pending.done = True

    def _free(self, blob_ids: list[str]) -> None:
        """Remove blobs no object refers to any more. Freeing a big file takes the file system
        tens of milliseconds, so big ones go to a background thread instead of delaying the
        answer; a crash before that leaves them for `recover()`."""
        for blob_id in blob_ids:
            try:
                if self.blobs.path(blob_id).stat().st_size >= _BACKGROUND_REMOVAL_BYTES:
                    _remover.submit(self._remove_quietly, blob_id)
                else:
                    self.blobs.remove(blob_id)
            except OSError as error:  # recover() removes it on the next start
                log.warning("cannot remove blob %s: %s", blob_id, error)

    def _remove_quietly(self, blob_id: str) -> None:
        try:
            self.blobs.remove(blob_id)
        except OSError as error:
            log.warning("cannot remove blob %s: %s", blob_id, error)

    def _notify(self) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener()
            except Exception:
                log.exception("object event listener failed")
