"""Objects keep the sizes of the parts they were completed from (GET/HEAD with partNumber).

Revision ID: 0005_s3_part_sizes
Revises: 0004_engine
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_s3_part_sizes"
down_revision: str | Sequence[str] | None = "0004_engine"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "0002_storage"  # the objects table


def upgrade() -> None:
    with op.batch_alter_table("objects") as table:
        table.add_column(sa.Column("part_sizes", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("objects") as table:
        table.drop_column("part_sizes")
