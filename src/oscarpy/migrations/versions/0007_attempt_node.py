"""Cluster mode: the node (machine) that ran each job attempt.

Revision ID: 0007_attempt_node
Revises: 0005_instances, 0005_request_log, 0005_revocations, 0005_s3_part_sizes,
    0006_job_retention

It merges the heads that grew from 0004_engine (the one that made `job_attempts`). 0002_storage
stays a head of its own: Alembic cannot apply a merge of it with a branch that shares its
parent (0001_base) from an empty database (`KeyError: '0002_storage'`).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_attempt_node"
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
    with op.batch_alter_table("job_attempts") as batch:
        batch.add_column(sa.Column("node", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_attempts") as batch:
        batch.drop_column("node")
