"""Signed-out dashboard sessions, kept in the state DB.

A session cookie stays valid by its signature until it expires; signing out must end it at once
everywhere: after a restart, and in every server process that shares the state DB. Each
revoked session id is a row until the cookie would have expired anyway.
"""

from __future__ import annotations

import time

from sqlalchemy import Float, String, delete, select
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from oscarpy.db import Base, Database


class SessionRevocation(Base):
    __tablename__ = "session_revocations"

    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    """When the revoked cookie expires anyway (seconds since the epoch); the row can go then."""


class Revocations:
    """The revoked session ids of one state DB."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def revoke(self, session_id: str, expires_at: float) -> None:
        insert = postgres_insert if self.database.dialect == "postgresql" else sqlite_insert
        with self.database.writing() as session:
            session.execute(
                delete(SessionRevocation).where(SessionRevocation.expires_at < time.time())
            )
            session.execute(
                insert(SessionRevocation)
                .values(session_id=session_id, expires_at=expires_at)
                .on_conflict_do_nothing()
            )

    def is_revoked(self, session_id: str) -> bool:
        with self.database.session() as session:
            found = session.scalar(
                select(SessionRevocation.session_id).where(
                    SessionRevocation.session_id == session_id
                )
            )
        return found is not None
