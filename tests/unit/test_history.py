"""The request log and usage records on both state DBs: batching, pages, retention, and the
gauges read at scrape time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from oscarpy.api.system import go_duration
from oscarpy.db import Database
from oscarpy.observability.collectors import DiskCollector, StoreCollector
from oscarpy.observability.history import History, RequestRecord, UsageRecord
from oscarpy.storage.store import ObjectStore

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def request(
    at: datetime, service: str = "svc", user: str = "oscar", job: str | None = None
) -> RequestRecord:
    return RequestRecord(
        at, "async", service, "POST", f"/job/{service}", 201, 0.01, "::1", user, job
    )


def usage(job: str, start: datetime, seconds: float) -> UsageRecord:
    return UsageRecord(
        job,
        "svc",
        "invocation",
        1,
        "succeeded",
        start,
        start + timedelta(seconds=seconds),
        0.5,
        2**30,
    )


def test_records_are_written_in_batches_and_read_in_pages(database: Database) -> None:
    history = History(database, timedelta(days=1))
    for minute in range(5):
        history.record_request(request(NOW + timedelta(minutes=minute), service=f"s{minute % 2}"))
    first = history.requests(limit=2)
    second = history.requests(after=first[-1].id, limit=2)
    third = history.requests(after=second[-1].id, limit=2)
    assert [r.at.minute for r in first + second + third] == [0, 1, 2, 3, 4]
    assert [r.service for r in history.requests(service="s1")] == ["s1", "s1"]
    assert len(history.requests(start=NOW + timedelta(minutes=3))) == 2
    assert len(history.requests(end=NOW + timedelta(minutes=3))) == 3
    assert first[0].at == NOW  # an aware UTC time on both databases


def test_retention_removes_only_what_is_older(database: Database) -> None:
    history = History(database, timedelta(days=1))
    history.record_request(request(NOW - timedelta(days=2)))
    history.record_request(request(NOW - timedelta(hours=1)))
    history.record_usage(usage("old", NOW - timedelta(days=3), 60))
    history.record_usage(usage("new", NOW - timedelta(hours=2), 60))
    history.flush()
    assert history.prune(NOW) == 2
    assert [r.at for r in history.requests()] == [NOW - timedelta(hours=1)]
    assert [u.job_id for u in history.usage_between(NOW - timedelta(days=9), NOW)] == ["new"]


def test_usage_in_a_range_and_its_callers(database: Database) -> None:
    history = History(database, timedelta(days=30))
    history.record_usage(usage("a", NOW, 60))
    history.record_usage(usage("b", NOW + timedelta(hours=2), 60))
    history.record_request(request(NOW, user="alice", job="a"))
    found = history.usage_between(NOW - timedelta(minutes=1), NOW + timedelta(hours=1))
    assert [u.job_id for u in found] == ["a"]
    assert history.callers(["a", "b"]) == {"a": "alice"}


def test_a_failed_write_keeps_the_records_for_the_next(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'no-schema.db'}")  # tables missing: writes fail
    history = History(database, timedelta(days=1))
    history.record_request(request(NOW))
    history.flush()
    database.migrate()
    history.flush()
    assert len(history.requests()) == 1
    database.close()


def scraped(collector: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(collector)  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_bucket_and_disk_gauges(database: Database, tmp_path: Path) -> None:
    store = ObjectStore(database, tmp_path / "data")
    store.create_bucket("empty")
    store.create_bucket("full")
    store.put_bytes("full", "a", b"12345")
    store.put_bytes("full", "b", b"678")
    found = scraped(StoreCollector(database))
    assert found[("oscar_bucket_objects", (("bucket", "full"),))] == 2
    assert found[("oscar_bucket_bytes", (("bucket", "full"),))] == 8
    assert found[("oscar_bucket_objects", (("bucket", "empty"),))] == 0
    disk = scraped(DiskCollector(database, tmp_path))
    assert disk[("oscar_state_db_bytes", ())] > 0
    assert disk[("oscar_data_dir_free_bytes", ())] > 0
    assert (("oscar_state_db_free_bytes", ()) in disk) == (database.dialect == "sqlite")


def test_go_durations() -> None:
    assert go_duration(2.5) == "2.5s"
    assert go_duration(0.0125) == "12.5ms"
    assert go_duration(0.00085) == "850µs"
