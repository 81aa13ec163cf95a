"""State DBs for tests: a fresh SQLite file, or a fresh database on the test PostgreSQL server."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from oscarpy.db import normalise_url

POSTGRES_URL = os.environ.get("OSCAR_TEST_POSTGRES_URL", "")


def postgres_reachable() -> tuple[bool, str]:
    if not POSTGRES_URL:
        return False, "OSCAR_TEST_POSTGRES_URL is not set (scripts/test sets it)"
    try:
        engine = create_engine(normalise_url(POSTGRES_URL))
        with engine.connect():
            pass
        engine.dispose()
    except Exception as error:  # any failure to connect means "not reachable"
        return False, f"PostgreSQL at OSCAR_TEST_POSTGRES_URL not reachable: {error}"
    return True, ""


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty database for one test, dropped afterwards."""
    name = f"oscar_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalise_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield (
            make_url(normalise_url(POSTGRES_URL))
            .set(database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        try:
            _drop(admin, name)
        finally:
            admin.dispose()


def _drop(admin: Engine, name: str) -> None:
    """DROP DATABASE ... WITH (FORCE), tried again for a few seconds: FORCE refuses while an
    autovacuum worker (a superuser's process) works in the database, which lasts moments."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except ProgrammingError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'state.db'}"
