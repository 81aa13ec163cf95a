"""Job engine: jobs, attempts, logs and the intake cursor.

Revision ID: 0004_engine
Revises: 0003_services
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_engine"
down_revision: str | Sequence[str] | None = "0003_services"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _time(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("service", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("provider", sa.String(255)),
        sa.Column("bucket", sa.String(255)),
        sa.Column("key", sa.String(1024)),
        sa.Column("etag", sa.String(128)),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("body_path", sa.String(1024)),
        _time("created_at", nullable=False),
        _time("started_at"),
        _time("finished_at"),
        _time("next_attempt_at", nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("script_failures", sa.Integer, nullable=False),
        sa.Column("infrastructure_failures", sa.Integer, nullable=False),
        sa.Column("exit_code", sa.Integer),
        sa.Column("reason", sa.String(32)),
        sa.Column("message", sa.Text),
        sa.Column("lease_owner", sa.String(255)),
        _time("lease_expires_at"),
        sa.Column("log_bytes", sa.BigInteger, nullable=False),
        sa.Column("log_truncated", sa.Boolean, nullable=False),
        sa.UniqueConstraint("service", "bucket", "key", "etag", name="uq_jobs_object_version"),
    )
    op.create_index("ix_jobs_dispatch", "jobs", ["status", "service", "next_attempt_at"])
    op.create_index("ix_jobs_service_created", "jobs", ["service", "created_at"])
    op.create_table(
        "job_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("execution_id", sa.String(128)),
        _time("started_at", nullable=False),
        _time("finished_at"),
        sa.Column("outcome", sa.String(32)),
        sa.Column("exit_code", sa.Integer),
        sa.Column("reason", sa.String(32)),
        sa.Column("message", sa.Text),
        sa.UniqueConstraint("job_id", "number", name="uq_job_attempts_number"),
    )
    op.create_index("ix_job_attempts_job_id", "job_attempts", ["job_id"])
    op.create_table(
        "job_logs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
    )
    op.create_index("ix_job_logs_job_id", "job_logs", ["job_id"])
    op.create_table(
        "engine_cursors",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("engine_cursors")
    op.drop_table("job_logs")
    op.drop_table("job_attempts")
    op.drop_table("jobs")
