"""Retention: the contents whose jobs expired, so the reconcile pass does not run them again.

Revision ID: 0006_job_retention
Revises: 0005_upload_identity
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_job_retention"
down_revision: str | Sequence[str] | None = "0005_upload_identity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "expired_objects",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("service", sa.String(255), nullable=False),
        sa.Column("bucket", sa.String(255), nullable=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("etag", sa.String(128), nullable=False),
        sa.UniqueConstraint("service", "bucket", "key", "etag", name="uq_expired_objects"),
    )


def downgrade() -> None:
    op.drop_table("expired_objects")
