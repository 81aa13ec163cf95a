"""The store's metadata tables: buckets, objects and multipart uploads with their parts.

Blobs themselves are files named by generated ids (`blob_id`), never by key: a key is data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from oscarpy.db import Base, utcnow

#: Keys sort and compare byte-wise, as S3 lists them: SQLite's default BINARY collation does,
#: PostgreSQL needs the "C" collation (its default would sort by locale).
KEY_TYPE = String(1024).with_variant(String(1024, collation="C"), "postgresql")


class BucketRow(Base):
    __tablename__ = "buckets"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    versioning: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """None (never versioned), "Enabled" or "Suspended"."""


class _VersionColumns:
    """What every version of an object has, current or not."""

    size: Mapped[int] = mapped_column(BigInteger)
    etag: Mapped[str] = mapped_column(String(80))
    content_type: Mapped[str] = mapped_column(String(255))
    user_metadata: Mapped[dict[str, Any]] = mapped_column(JSON)
    headers: Mapped[dict[str, Any]] = mapped_column(JSON)
    """Stored response headers: Cache-Control, Content-Disposition, Content-Encoding..."""
    last_modified: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    part_sizes: Mapped[list[int] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    """Of an object completed from a multipart upload, the size of each part, in order."""
    checksum: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    """The additional checksum a client declared (`storage.checksums.Checksum.to_json`)."""
    version_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """None for S3's "null" version (written while the bucket was not versioning)."""


class ObjectRow(_VersionColumns, Base):
    """The current version of one object (of a versioned bucket, older versions and delete
    markers are `VersionRow`s)."""

    __tablename__ = "objects"

    bucket: Mapped[str] = mapped_column(String(63), primary_key=True)
    key: Mapped[str] = mapped_column(KEY_TYPE, primary_key=True)
    blob_id: Mapped[str] = mapped_column(String(64))


class VersionRow(_VersionColumns, Base):
    """A noncurrent version or a delete marker of a versioned bucket; newer ones have higher
    ids. The latest version of a key is its `ObjectRow` if there is one, else its newest delete
    marker here."""

    __tablename__ = "object_versions"
    __table_args__ = (Index("ix_object_versions_key", "bucket", "key", "id"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    bucket: Mapped[str] = mapped_column(String(63))
    key: Mapped[str] = mapped_column(KEY_TYPE)
    delete_marker: Mapped[bool] = mapped_column(Boolean)
    blob_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class UploadRow(Base):
    """A multipart upload in progress."""

    __tablename__ = "multipart_uploads"

    upload_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    bucket: Mapped[str] = mapped_column(String(63), index=True)
    key: Mapped[str] = mapped_column(KEY_TYPE)
    content_type: Mapped[str] = mapped_column(String(255))
    user_metadata: Mapped[dict[str, Any]] = mapped_column(JSON)
    headers: Mapped[dict[str, Any]] = mapped_column(JSON)
    checksum: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    """The checksum algorithm and type the upload was created with."""
    initiated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PartRow(Base):
    __tablename__ = "multipart_parts"

    upload_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    part_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    blob_id: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    etag: Mapped[str] = mapped_column(String(80))
    last_modified: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    checksum: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
