"""Observability: the request log of /job and /run, and usage records of finished attempts.

Revision ID: 0005_request_log
Revises: 0004_engine
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_request_log"
down_revision: str | Sequence[str] | None = "0004_engine"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _time(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "request_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _time("at"),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("service", sa.String(255), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("duration", sa.Float, nullable=False),
        sa.Column("client_ip", sa.String(64), nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("job_id", sa.String(36)),
    )
    op.create_index("ix_request_log_at", "request_log", ["at"])
    op.create_index("ix_request_log_service_at", "request_log", ["service", "at"])
    op.create_index("ix_request_log_job_id", "request_log", ["job_id"])
    op.create_table(
        "job_usage",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("service", sa.String(255), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        _time("started_at"),
        _time("finished_at"),
        sa.Column("cpu_cores", sa.Float, nullable=False),
        sa.Column("memory_bytes", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_job_usage_job_id", "job_usage", ["job_id"])
    op.create_index("ix_job_usage_finished_at", "job_usage", ["finished_at"])


def downgrade() -> None:
    op.drop_table("job_usage")
    op.drop_table("request_log")
