"""The engine's tables: jobs, their attempts, their logs, and the intake cursor.

A job is one unit of work (one object version, or one `/job` request); each try at running it
is a separate attempt record holding the execution id, times, exit code and reason, so that a
retried job keeps the story of every try. Only `oscarpy.engine.ledger` writes these tables.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from oscarpy.db import Base, UtcDateTime


class JobStatus(StrEnum):
    """Where a job is; changed only by `Ledger._transition`."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def oscar_name(self) -> str:
        """The spelling OSCAR's API and clients use (`Pending`, `Running`, …)."""
        return self.value.capitalize()


class JobSource(StrEnum):
    STORAGE = "storage"
    """An object created in the embedded store."""
    EVENT = "event"
    """`POST /job` with a MinIO/S3 event naming an object."""
    INVOCATION = "invocation"
    """`POST /job` with any other body."""
    RECONCILE = "reconcile"
    """An existing object found by a reconcile pass."""
    RUN = "sync"
    """`POST /run`: run at once in a warm container while the client waits; never retried.
    Stored and shown as `sync`, its name before the concept was called `run` everywhere, so
    that existing state DBs and clients keep working."""


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        # One job per upload, however often its event arrives; a new upload of the same bytes
        # is another upload (see `engine.events.upload_identity`).
        UniqueConstraint("service", "bucket", "key", "upload", name="uq_jobs_upload"),
        Index("ix_jobs_object", "service", "bucket", "key", "etag"),
        Index("ix_jobs_dispatch", "status", "service", "next_attempt_at"),
        Index("ix_jobs_service_created", "service", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    service: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str | None] = mapped_column(String(255))
    bucket: Mapped[str | None] = mapped_column(String(255))
    key: Mapped[str | None] = mapped_column(String(1024))
    etag: Mapped[str | None] = mapped_column(String(128))
    upload: Mapped[str | None] = mapped_column(String(255))
    """Which upload of the object this job is for; `None` for invocations (never deduplicated)."""
    event: Mapped[str] = mapped_column(Text, default="")
    """The event JSON handed to the script as `EVENT` (storage jobs) or the request body's
    description (invocations)."""
    body_path: Mapped[str | None] = mapped_column(String(1024))
    """Where a `/job` request body waits on disk (invocations only)."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    script_failures: Mapped[int] = mapped_column(Integer, default=0)
    infrastructure_failures: Mapped[int] = mapped_column(Integer, default=0)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(32))
    message: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    log_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    log_truncated: Mapped[bool] = mapped_column(default=False)


class JobAttempt(Base):
    __tablename__ = "job_attempts"
    __table_args__ = (UniqueConstraint("job_id", "number", name="uq_job_attempts_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(36), index=True)
    number: Mapped[int] = mapped_column(Integer)
    owner: Mapped[str] = mapped_column(String(255))
    execution_id: Mapped[str | None] = mapped_column(String(128))
    node: Mapped[str | None] = mapped_column(String(255))
    """The machine that ran it (a Swarm node's hostname in cluster mode), once known."""
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    outcome: Mapped[str | None] = mapped_column(String(32))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(32))
    message: Mapped[str | None] = mapped_column(Text)


class JobLogChunk(Base):
    """A batch of log lines, each `<ISO time> <text>`, in the order they were printed."""

    __tablename__ = "job_logs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(36), index=True)
    text: Mapped[str] = mapped_column(Text)


class ExpiredObject(Base):
    """An object content whose job expired (`engine.retention`): the reconcile pass still
    knows it ran, and does not run it again."""

    __tablename__ = "expired_objects"
    __table_args__ = (
        UniqueConstraint("service", "bucket", "key", "etag", name="uq_expired_objects"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(255))
    bucket: Mapped[str] = mapped_column(String(255))
    key: Mapped[str] = mapped_column(String(1024))
    etag: Mapped[str] = mapped_column(String(128))


class IntakeCursor(Base):
    """The last object event the intake has turned into jobs, committed with those jobs."""

    __tablename__ = "engine_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)
