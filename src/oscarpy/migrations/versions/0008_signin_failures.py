"""Failed sign-ins, counted in the state DB so that every server process shares them.

Revision ID: 0008_signin_failures
Revises: 0007_users
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_signin_failures"
down_revision: str | Sequence[str] | None = "0007_users"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signin_failures",
        sa.Column("key", sa.String(320), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("blocked_until", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_signin_failures_expires_at", "signin_failures", ["expires_at"])


def downgrade() -> None:
    op.drop_table("signin_failures")
