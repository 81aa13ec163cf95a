"""The intake on SQLite and PostgreSQL: every object event becomes a job, however many came."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from oscarpy.db import Database
from oscarpy.engine import intake as intake_module
from oscarpy.engine.intake import _PRUNE_EVERY, CURSOR, Intake
from oscarpy.engine.ledger import Ledger
from oscarpy.engine.records import IntakeCursor, JobStatus
from oscarpy.services.model import parse_service
from oscarpy.storage.store import ObjectStore


@dataclass
class Flow:
    """A store whose uploads under `inbox/up/` are meant for the service `svc`, and its intake."""

    store: ObjectStore
    ledger: Ledger
    intake: Intake


@pytest.fixture
def flow(database: Database, tmp_path: Path) -> Flow:
    store = ObjectStore(database, tmp_path / "data")
    store.create_bucket("inbox")
    ledger = Ledger(database, log_cap=1000)
    service = parse_service(
        {"name": "svc", "image": "busybox", "script": "true", "input": [{"path": "inbox/up"}]}
    )
    return Flow(store, ledger, Intake(ledger, lambda: [service], lambda: None))


def test_uploads_after_the_consumed_events_are_pruned_still_make_jobs(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Consumed events are deleted every `_PRUNE_EVERY`; the uploads after that must still be
    seen (SQLite once numbered them from 1 again, below the intake's cursor, and lost them)."""
    store, ledger, intake = flow.store, flow.ledger, flow.intake
    total = 60  # a prune of 60 events shows what one of `_PRUNE_EVERY` does, 16 times sooner
    assert total < _PRUNE_EVERY
    monkeypatch.setattr(intake_module, "_PRUNE_EVERY", total)  # all consumed when it comes
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
    flow: Flow,
) -> None:
    """A state DB from before the prune fix: the cursor is ahead of every event id."""
    store, ledger, intake = flow.store, flow.ledger, flow.intake
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


def test_uploading_the_same_bytes_again_makes_a_job_per_upload_and_reading_again_none(
    flow: Flow,
) -> None:
    """Exactly once per upload: a re-upload of identical bytes is a new job (OSCAR's way to run a
    file again); the same upload's event read twice (as after a crash) is not."""
    store, ledger, intake = flow.store, flow.ledger, flow.intake
    store.put_bytes("inbox", "up/a", b"same")
    store.put_bytes("inbox", "up/a", b"same")
    assert intake.process_batch() == 2
    assert ledger.count_by_status("svc")[JobStatus.PENDING] == 2
    with ledger.writing() as session:  # as if the batch's commit had been lost in a crash
        cursor = session.get(IntakeCursor, CURSOR)
        assert cursor is not None
        cursor.position = 0
    restarted = Intake(ledger, intake._services, lambda: None)
    assert restarted.process_batch() == 2
    assert ledger.count_by_status("svc")[JobStatus.PENDING] == 2


def test_events_no_service_wants_cost_no_write_and_still_make_no_job_when_read_again(
    flow: Flow,
) -> None:
    """Outputs of jobs are objects too: their events move only the intake's memory, not the
    stored cursor (no write); a restart reads them again and they still make no job, while the
    next wanted upload is taken and moves the stored cursor past them all."""
    store, ledger, intake = flow.store, flow.ledger, flow.intake
    store.put_bytes("inbox", "out/result-1", b"x")
    store.put_bytes("inbox", "out/result-2", b"x")
    assert intake.process_batch() == 2
    assert intake.process_batch() == 0  # read once
    with ledger.database.session() as session:
        assert session.get(IntakeCursor, CURSOR) is None  # nothing written
    restarted = Intake(ledger, intake._services, lambda: None)
    assert restarted.process_batch() == 2
    assert ledger.count_by_status("svc") == {}
    store.put_bytes("inbox", "up/wanted", b"x")
    assert intake.process_batch() == 3
    assert ledger.count_by_status("svc")[JobStatus.PENDING] == 1
    with ledger.database.session() as session:
        cursor = session.get(IntakeCursor, CURSOR)
        assert cursor is not None and cursor.position == max(e.id for e in store.events_after(0))
