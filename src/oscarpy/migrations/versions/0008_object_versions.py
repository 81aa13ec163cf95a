"""Bucket versioning: a bucket's status, each current object's version id, and the table of
noncurrent versions and delete markers.

Revision ID: 0008_object_versions
Revises: 0007_checksums
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_object_versions"
down_revision: str | Sequence[str] | None = "0007_checksums"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = sa.String(1024).with_variant(sa.String(1024, collation="C"), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("buckets") as table:
        table.add_column(sa.Column("versioning", sa.String(16), nullable=True))
    with op.batch_alter_table("objects") as table:
        table.add_column(sa.Column("version_id", sa.String(64), nullable=True))
    op.create_table(
        "object_versions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("bucket", sa.String(63), nullable=False),
        sa.Column("key", KEY, nullable=False),
        sa.Column("version_id", sa.String(64), nullable=True),
        sa.Column("delete_marker", sa.Boolean, nullable=False),
        sa.Column("blob_id", sa.String(64), nullable=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("etag", sa.String(80), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("user_metadata", sa.JSON, nullable=False),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("last_modified", sa.DateTime(timezone=True), nullable=False),
        sa.Column("part_sizes", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("checksum", sa.JSON(none_as_null=True), nullable=True),
    )
    op.create_index("ix_object_versions_key", "object_versions", ["bucket", "key", "id"])


def downgrade() -> None:
    op.drop_index("ix_object_versions_key", "object_versions")
    op.drop_table("object_versions")
    with op.batch_alter_table("objects") as table:
        table.drop_column("version_id")
    with op.batch_alter_table("buckets") as table:
        table.drop_column("versioning")
