"""Registered services.

Revision ID: 0003_services
Revises: 0001_base
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_services"
down_revision: str | Sequence[str] | None = "0001_base"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "services",
        sa.Column("name", sa.String(39), primary_key=True),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("services")
