"""Object events: every committed create or delete, recorded in the same transaction as the
metadata change, so that the job engine never misses an object even across a crash.

The engine keeps its own cursor (the last event id it has turned into jobs) and calls
`fetch_events` from there; `prune_events` drops what every consumer has seen.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy import BigInteger, DateTime, Integer, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from oscarpy.db import Base, utcnow
from oscarpy.storage.tables import KEY_TYPE

EventKind = Literal["created", "deleted"]


class ObjectEvent(Base):
    """One committed change of one object."""

    __tablename__ = "object_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    bucket: Mapped[str] = mapped_column(String(63))
    key: Mapped[str] = mapped_column(KEY_TYPE)
    size: Mapped[int] = mapped_column(BigInteger)
    etag: Mapped[str] = mapped_column(String(80))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def fetch_events(session: Session, after_id: int, limit: int) -> list[ObjectEvent]:
    """The events with an id above `after_id`, oldest first, at most `limit` of them."""
    query = select(ObjectEvent).where(ObjectEvent.id > after_id).order_by(ObjectEvent.id)
    return list(session.scalars(query.limit(limit)))


def prune_events(session: Session, up_to_id: int) -> int:
    """Delete the events with an id up to and including `up_to_id`; returns how many.

    Keep at least the newest event: on SQLite, ids are reused from 1 once the table is empty.
    """
    result = session.execute(delete(ObjectEvent).where(ObjectEvent.id <= up_to_id))
    return int(result.rowcount)  # type: ignore[attr-defined]
