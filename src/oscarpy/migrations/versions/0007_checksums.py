"""Objects, multipart uploads and their parts keep the additional checksum a client declared
(CRC32, CRC32C, CRC64NVME, SHA-1, SHA-256).

Revision ID: 0007_checksums
Revises: 0005_instances, 0005_request_log, 0005_revocations, 0005_s3_part_sizes,
0006_job_retention
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_checksums"
down_revision: str | Sequence[str] | None = (
    "0005_instances",
    "0005_request_log",
    "0005_revocations",
    "0005_s3_part_sizes",
    "0006_job_retention",
)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
_TABLES = ("objects", "multipart_uploads", "multipart_parts")


def upgrade() -> None:
    for name in _TABLES:
        with op.batch_alter_table(name) as table:
            table.add_column(sa.Column("checksum", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    for name in _TABLES:
        with op.batch_alter_table(name) as table:
            table.drop_column("checksum")
