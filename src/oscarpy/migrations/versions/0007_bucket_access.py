"""Bucket ownership and sharing (owner, visibility, allowed users, S3's public access switches).

Revision ID: 0007_bucket_access
Revises: 0005_instances, 0005_request_log, 0005_revocations, 0005_s3_part_sizes,
0006_job_retention
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_bucket_access"
down_revision: str | Sequence[str] | None = (
    "0005_instances",
    "0005_request_log",
    "0005_revocations",
    "0005_s3_part_sizes",
    "0006_job_retention",
)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bucket_access",
        sa.Column("bucket", sa.String(63), primary_key=True),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("visibility", sa.String(16), nullable=False),
        sa.Column("allowed_users", sa.JSON, nullable=False),
        sa.Column("anonymous_read", sa.Boolean, nullable=False),
        sa.Column("public_access_block", sa.JSON, nullable=False),
        sa.Column("service", sa.String(39), nullable=True),
    )
    op.create_index("ix_bucket_access_owner", "bucket_access", ["owner"])


def downgrade() -> None:
    op.drop_index("ix_bucket_access_owner", table_name="bucket_access")
    op.drop_table("bucket_access")
