"""The intake on SQLite and PostgreSQL: every object event becomes a job, however many came."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from oscarpy.db import Database
from oscarpy.engine.intake import _PRUNE_EVERY, CURSOR, Intake
from oscarpy.engine.ledger import Ledger
from oscarpy.engine.records import IntakeCursor, JobStatus
from oscarpy.services.model import Service, parse_service
from oscarpy.storage.store import ObjectStore


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.migrate()
    yield database
    database.close()


def test_uploads_after_the_consumed_events_are_pruned_still_make_jobs(
    database: Database, tmp_path: Path
) -> None:
    """Consumed events are deleted every `_PRUNE_EVERY`; the uploads after that must still be
    seen (SQLite once numbered them from 1 again, below the intake's cursor, and lost them)."""
    store = ObjectStore(database, tmp_path / "data")
    ledger = Ledger(database, log_cap=1000)
    service: Service = parse_service(
        {"name": "svc", "image": "busybox", "script": "true", "input": [{"path": "inbox/up"}]}
    )
    intake = Intake(ledger, lambda: [service], lambda: None)
    store.create_bucket("inbox")
    total = _PRUNE_EVERY  # all consumed when the prune comes
    for number in range(total):
        store.put_bytes("inbox", f"up/{number}", b"x")
    while intake.process_batch():
        pass
    assert store.events_after(0), "the newest consumed event is kept"
    for number in range(total, total + 3):
        store.put_bytes("inbox", f"up/{number}", b"x")
    assert intake.process_batch() == 3
    assert ledger.count_by_status("svc")[JobStatus.PENDING] == total + 3


def test_events_numbered_below_the_cursor_by_an_older_version_are_read_at_start(
    database: Database, tmp_path: Path
) -> None:
    """A state DB from before the prune fix: the cursor is ahead of every event id."""
    store = ObjectStore(database, tmp_path / "data")
    ledger = Ledger(database, log_cap=1000)
    service: Service = parse_service(
        {"name": "svc", "image": "busybox", "script": "true", "input": [{"path": "inbox/up"}]}
    )
    intake = Intake(ledger, lambda: [service], lambda: None)
    store.create_bucket("inbox")
    store.put_bytes("inbox", "up/first", b"x")
    assert intake.process_batch() == 1
    assert intake.rewind_below_reused_ids() is False  # a healthy cursor stays
    with ledger.writing() as session:
        cursor = session.get(IntakeCursor, CURSOR)
        assert cursor is not None
        cursor.position = 10_000  # as if ids had restarted from 1 after a prune
    store.put_bytes("inbox", "up/second", b"x")
    assert intake.process_batch() == 0  # invisible below the cursor
    assert intake.rewind_below_reused_ids() is True
    assert intake.process_batch() == 2  # both again; the ledger keeps one job per version
    assert ledger.count_by_status("svc")[JobStatus.PENDING] == 2
