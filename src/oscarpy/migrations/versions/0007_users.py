"""Users signed in through OpenID Connect, with their own S3 key pair.

Revision ID: 0007_users
Revises: 0001_base
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_users"
# A branch of its own (the state DB upgrades to every head): a merge revision over the other
# heads made alembic lose track of them when a fresh DB upgrades to "heads".
down_revision: str | Sequence[str] | None = "0001_base"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("user_id", sa.String(255), primary_key=True),
        sa.Column("issuer", sa.String(1024), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False, server_default=""),
        sa.Column("access_key", sa.String(64), nullable=False, unique=True),
        sa.Column("secret_key", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("users")
