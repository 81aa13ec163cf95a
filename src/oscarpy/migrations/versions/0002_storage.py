"""Embedded object store: buckets, objects, multipart uploads and object events.

Revision ID: 0002_storage
Revises: 0001_base
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_storage"
down_revision: str | Sequence[str] | None = "0001_base"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Byte-wise key order, as S3 lists: PostgreSQL needs the "C" collation, SQLite's default is.
KEY = sa.String(1024).with_variant(sa.String(1024, collation="C"), "postgresql")
MOMENT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "buckets",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("created_at", MOMENT, nullable=False),
    )
    op.create_table(
        "objects",
        sa.Column("bucket", sa.String(63), primary_key=True),
        sa.Column("key", KEY, primary_key=True),
        sa.Column("blob_id", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("etag", sa.String(80), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("user_metadata", sa.JSON, nullable=False),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("last_modified", MOMENT, nullable=False),
    )
    op.create_table(
        "multipart_uploads",
        sa.Column("upload_id", sa.String(64), primary_key=True),
        sa.Column("bucket", sa.String(63), nullable=False, index=True),
        sa.Column("key", KEY, nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("user_metadata", sa.JSON, nullable=False),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("initiated_at", MOMENT, nullable=False),
    )
    op.create_table(
        "multipart_parts",
        sa.Column("upload_id", sa.String(64), primary_key=True),
        sa.Column("part_number", sa.Integer, primary_key=True),
        sa.Column("blob_id", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("etag", sa.String(80), nullable=False),
        sa.Column("last_modified", MOMENT, nullable=False),
    )
    op.create_table(
        "object_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("bucket", sa.String(63), nullable=False),
        sa.Column("key", KEY, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("etag", sa.String(80), nullable=False),
        sa.Column("occurred_at", MOMENT, nullable=False),
    )


def downgrade() -> None:
    for table in ("object_events", "multipart_parts", "multipart_uploads", "objects", "buckets"):
        op.drop_table(table)
