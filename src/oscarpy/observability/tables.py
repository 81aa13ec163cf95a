"""The platform's history: who called `/job` and `/run` (the request log), and what each
finished attempt of a job held (usage records, from which CPU and memory hours are summed).

Both are kept for `request_log_retention_days`, independently of the jobs: deleting a job keeps
its usage in the totals. Only `oscarpy.observability.history` writes them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from oscarpy.db import Base
from oscarpy.engine.records import UtcDateTime


class RequestLogRow(Base):
    __tablename__ = "request_log"
    __table_args__ = (Index("ix_request_log_service_at", "service", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    """`sync` (`/run`) or `async` (`/job`)."""
    service: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(String(1024))
    status: Mapped[int] = mapped_column(Integer)
    duration: Mapped[float] = mapped_column(Float)
    """Seconds from the request's arrival to the end of its answer."""
    client_ip: Mapped[str] = mapped_column(String(64))
    user: Mapped[str] = mapped_column(String(255))
    job_id: Mapped[str | None] = mapped_column(String(36), index=True)


class UsageRow(Base):
    __tablename__ = "job_usage"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(36), index=True)
    service: Mapped[str] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    cpu_cores: Mapped[float] = mapped_column(Float)
    """The cores the service reserved for the attempt (its `cpu`)."""
    memory_bytes: Mapped[int] = mapped_column(BigInteger)
