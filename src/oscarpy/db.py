"""The state DB: engine, sessions, schema and migrations.

SQLite (WAL) in the data directory by default, PostgreSQL through a URL. Every concern keeps
its tables in its own module, declared on `Base`; Alembic migrations under
`oscarpy/migrations/versions` create them and are applied on start.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    DateTime,
    Dialect,
    Engine,
    String,
    TypeDecorator,
    create_engine,
    event,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


class Base(DeclarativeBase):
    pass


class SystemMeta(Base):
    """Facts about this installation (when its schema was created, its instance id)."""

    __tablename__ = "system_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(1024))


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no zone, so store naive UTC there)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def normalise_url(url: str) -> str:
    """Accept the URL spellings users copy from elsewhere and pick our PostgreSQL driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the writer; NORMAL keeps every committed transaction across a
    # process crash (kill -9), which is the promise we make; busy_timeout queues writers.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """One state DB: an engine, a session factory and the migrations that shape it."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.dialect = make_url(self.url).get_backend_name()
        # A pre-ping finds server connections a restart or idle timeout closed; a SQLite file
        # has no server to lose, and the ping would cost a round trip per session.
        options: dict[str, Any] = {"pool_pre_ping": self.dialect != "sqlite"}
        if self.dialect == "sqlite":
            options["connect_args"] = {"check_same_thread": False, "timeout": 30}
        self.engine: Engine = create_engine(self.url, **options)
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _tune_sqlite)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        #: SQLite runs one writer at a time. The writers of this process queue on this lock,
        #: which hands over at once, where SQLite's busy handler makes a waiter sleep 1, 2,
        #: 5... ms between polls (several ms added to a small PUT that meets the job intake).
        self.write_lock: threading.RLock | None = (
            threading.RLock() if self.dialect == "sqlite" else None
        )

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on any error."""
        with self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A write transaction that holds the write lock from its start: on SQLite, under
        `write_lock` and BEGIN IMMEDIATE, so that what it reads stays true until it commits
        and concurrent writers queue instead of failing on a stale snapshot."""
        if self.write_lock is None:
            with self.session() as session:
                yield session
            return
        with self.write_lock, self.session() as session:
            session.execute(text("BEGIN IMMEDIATE"))
            yield session

    def migrate(self) -> None:
        """Bring the schema to the newest revision of every migration branch."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "heads")
        with self.session() as session:
            if session.get(SystemMeta, "created_at") is None:
                session.add(SystemMeta(key="created_at", value=utcnow().isoformat()))

    def meta(self, key: str) -> str | None:
        with self.session() as session:
            return session.scalar(select(SystemMeta.value).where(SystemMeta.key == key))

    def close(self) -> None:
        self.engine.dispose()

    def describe(self) -> str:
        """The URL with any password hidden, for logs and messages."""
        return make_url(self.url).render_as_string(hide_password=True)
