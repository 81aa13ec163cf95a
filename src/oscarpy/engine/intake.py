"""Turns object events of the embedded store into jobs.

The store records an event in the same transaction as each object; the intake reads them
after its own cursor and, in one transaction, creates a job for every service whose input path
(bucket + folder, and its prefix/suffix filters) contains the key and moves the cursor past
them. A crash therefore loses no event and creates no job twice. The store wakes the intake
after each commit; a slow poll covers events committed by another process.

`reconcile` is the third source: it lists a service's inputs (any provider) and creates a job
for each object version that has none yet.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from oscarpy.db import utcnow
from oscarpy.engine.events import storage_event, upload_identity
from oscarpy.engine.ledger import Ledger, NewJob
from oscarpy.engine.records import IntakeCursor, JobSource
from oscarpy.services.isolation import watched_inputs
from oscarpy.services.model import Service, StoragePath
from oscarpy.storage.events import ObjectEvent, fetch_events, prune_events
from oscarpy.storage.providers.base import StorageProvider

log = logging.getLogger(__name__)

CURSOR = "object_events"
_BATCH = 500
_POLL_SECONDS = 2.0
_BURST_EVENTS_PER_SECOND = 100.0
_BURST_PAUSE_SECONDS = 0.05
"""The store wakes the intake after every commit. While events arrive faster than
`_BURST_EVENTS_PER_SECOND` (a moving average), uploads are coming in a burst: batches then
start at least `_BURST_PAUSE_SECONDS` apart, so that the events of many commits share one
transaction instead of one transaction (and one turn on the state DB's write lock) each.
Uploads at a human or pipeline pace, such as the steps of a chain of services, are taken at
once."""
_RATE_WEIGHT = 0.3
_PRUNE_EVERY = 1000
"""Events the intake has consumed are deleted in batches of about this many (it is their only
consumer); the store keeps the objects, the ledger keeps the jobs."""


def path_contains(path: StoragePath, bucket: str, key: str) -> bool:
    """Whether the object `bucket/key` lies under `path` and passes its filters."""
    if path.bucket != bucket or key.endswith("/"):
        return False
    prefix = path.key_prefix()
    if not key.startswith(prefix):
        return False
    return path.matches(key[len(prefix) :])


def services_for(services: Iterable[Service], bucket: str, key: str) -> list[Service]:
    """Every service with an embedded-store input that contains the key (each service once)."""
    return [
        service
        for service in services
        if any(
            service.uses_embedded_store(path) and path_contains(path, bucket, key)
            for path in watched_inputs(service)
        )
    ]


class Intake:
    def __init__(
        self,
        ledger: Ledger,
        services: Callable[[], list[Service]],
        on_jobs: Callable[[], None],
        *,
        region: str = "",
    ) -> None:
        self.ledger = ledger
        self._services = services
        self._on_jobs = on_jobs
        self._region = region
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pruned = 0
        self._seen = 0
        """The newest event this process has read (at or past the stored cursor)."""

    def wake(self) -> None:
        """Called by the store after a commit that recorded events (in the committing thread)."""
        self._wake.set()

    def start(self) -> None:
        self.rewind_below_reused_ids()
        self._thread = threading.Thread(target=self._loop, name="intake", daemon=True)
        self._thread.start()

    def rewind_below_reused_ids(self) -> bool:
        """Read events from the start again if the newest one is below the cursor.

        That happens only to a state DB written before pruning kept the newest consumed event:
        SQLite numbered events from 1 again once the table was empty, below the cursor, and
        the intake never saw them. Re-reading is safe: the ledger makes one job per object
        version. Returns whether it rewound.
        """
        with self.ledger.writing() as session:
            cursor = session.get(IntakeCursor, CURSOR, with_for_update=True)
            if cursor is None or cursor.position == 0:
                return False
            newest = session.scalar(select(func.max(ObjectEvent.id)))
            if newest is not None and newest >= cursor.position:
                return False
            log.warning(
                "object events are numbered below the intake's cursor (%s); reading them all",
                cursor.position,
            )
            cursor.position = 0
            self._pruned = 0
            self._seen = 0
            return True

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)

    def _loop(self) -> None:
        rate = 0.0
        previous = time.monotonic()
        while not self._stopping.is_set():
            if rate > _BURST_EVENTS_PER_SECOND:
                pause = previous + _BURST_PAUSE_SECONDS - time.monotonic()
                if pause > 0:
                    self._stopping.wait(pause)
            started = time.monotonic()
            self._wake.clear()
            read = 0
            try:
                # A full batch may leave more behind; a shorter one read everything committed
                # before it began, and later commits have set the wake event again.
                while not self._stopping.is_set():
                    batch = self.process_batch()
                    read += batch
                    if batch < _BATCH:
                        break
            except Exception:
                log.exception("intake failed; retrying shortly")
            rate += _RATE_WEIGHT * (read / max(started - previous, 0.001) - rate)
            previous = started
            self._wake.wait(_POLL_SECONDS)

    def process_batch(self) -> int:
        """Turn the next batch of events into jobs; returns how many events were read.

        The batch is read first without the write lock: when no event in it concerns a service
        (the outputs jobs write, mostly), only this process's `_seen` moves past it and nothing
        is written. The stored cursor follows with the next batch that makes jobs (or with the
        next prune); a restart reads such events again, and they still make no job.
        """
        with self.ledger.database.session() as session:
            stored = session.scalar(
                select(IntakeCursor.position).where(IntakeCursor.name == CURSOR)
            )
            events = fetch_events(session, max(stored or 0, self._seen), _BATCH)
        if not events:
            return 0
        # Read after the events: a service registered (by any process) before an object of its
        # input was written is then always known.
        services = self._services()
        newest = events[-1].id
        wanted = any(self._concerned(services, event) for event in events)
        if not wanted and newest - self._pruned < _PRUNE_EVERY:
            self._seen = newest
            return len(events)
        created = 0
        with self.ledger.writing() as session:
            cursor = session.get(IntakeCursor, CURSOR, with_for_update=True)
            if cursor is None:
                cursor = IntakeCursor(name=CURSOR, position=0)
                session.add(cursor)
            # From the stored cursor: what this process skipped makes no job, and another
            # process may have taken events meanwhile.
            events = fetch_events(session, cursor.position, _BATCH)
            if events and events[-1].id != newest:
                services = self._services()
            for event in events:
                created += self._jobs_for(session, services, event)
            if events:
                cursor.position = events[-1].id
                if cursor.position - self._pruned >= _PRUNE_EVERY:
                    # The newest consumed event stays: SQLite numbers a new row one above the
                    # largest id in the table, so an emptied table would number events from 1
                    # again, below the cursor, and the intake would never see them.
                    prune_events(session, cursor.position - 1)
                    self._pruned = cursor.position
                self._seen = cursor.position
        if created:
            log.debug("intake: %d job(s) from %d event(s)", created, len(events))
            self._on_jobs()
        return len(events)

    @staticmethod
    def _concerned(services: list[Service], event: ObjectEvent) -> bool:
        return event.kind == "created" and bool(services_for(services, event.bucket, event.key))

    def _jobs_for(self, session: Session, services: list[Service], event: ObjectEvent) -> int:
        if event.kind != "created":
            return 0
        created = 0
        for service in services_for(services, event.bucket, event.key):
            new = NewJob(
                service=service.name,
                source=JobSource.STORAGE,
                event=storage_event(
                    event.bucket,
                    event.key,
                    event.size,
                    event.etag,
                    event.occurred_at,
                    self._region,
                ),
                provider="minio.default",
                bucket=event.bucket,
                key=event.key,
                etag=event.etag,
                # The event's time is the object's commit time: the same identity the
                # reconcile pass and `/job` give this upload.
                upload=upload_identity(event.etag, event.occurred_at),
            )
            if self.ledger.add(session, new) is not None:
                created += 1
        return created

    def reconcile(self, service: Service, resolve: Callable[[str], StorageProvider]) -> int:
        """Create jobs for the objects under the service's inputs that have none yet;
        `resolve` turns a provider name of the service into its provider."""
        created = 0
        for path in watched_inputs(service):
            provider = resolve(path.storage_provider)
            for found in provider.list_objects(path.bucket, path.key_prefix()):
                if not path_contains(path, found.bucket, found.key):
                    continue
                if self.ledger.had_job(service.name, found.bucket, found.key, found.etag):
                    continue
                new = NewJob(
                    service=service.name,
                    source=JobSource.RECONCILE,
                    event=storage_event(
                        found.bucket, found.key, found.size, found.etag, utcnow(), self._region
                    ),
                    provider=path.storage_provider,
                    bucket=found.bucket,
                    key=found.key,
                    etag=found.etag,
                    upload=upload_identity(found.etag, found.last_modified),
                )
                if self.ledger.add_job(new) is not None:
                    created += 1
        if created:
            self._on_jobs()
        return created
