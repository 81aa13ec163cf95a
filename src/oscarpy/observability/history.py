"""Writes and reads the request log and the usage records (see `observability.tables`).

Requests and finished attempts are queued in memory and written in one transaction a second
by a background thread, so that neither a `/run` request nor a job waits on an extra write.
Reads write out the queue first, so what a caller did is always in what it reads next. A crash
loses at most the last second of history; jobs, objects and logs are unaffected.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import delete, insert, select

from oscarpy.db import Database, utcnow
from oscarpy.observability.tables import RequestLogRow, UsageRow
from oscarpy.periodic import Periodic

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
PRUNE_SECONDS = 3600.0
QUEUE_LIMIT = 100_000
"""Records kept in memory while the state DB refuses writes; past it the oldest are dropped."""
T = TypeVar("T")


@dataclass(frozen=True)
class RequestRecord:
    """One `/job` or `/run` request as the request log keeps it."""

    at: datetime
    kind: str
    service: str
    method: str
    path: str
    status: int
    duration: float
    client_ip: str
    user: str
    job_id: str | None


@dataclass(frozen=True)
class UsageRecord:
    """What one finished attempt held: its service's reserved CPU and memory, for how long."""

    job_id: str
    service: str
    source: str
    attempt: int
    outcome: str
    started_at: datetime
    finished_at: datetime
    cpu_cores: float
    memory_bytes: int


@dataclass(frozen=True)
class LoggedRequest(RequestRecord):
    id: int


class History:
    """The request log and usage records; `start()`/`stop()` as a background service."""

    def __init__(self, database: Database, retention: timedelta) -> None:
        self.database = database
        self.retention = retention
        self._requests: deque[RequestRecord] = deque(maxlen=QUEUE_LIMIT)
        self._usage: deque[UsageRecord] = deque(maxlen=QUEUE_LIMIT)
        self._flush_lock = threading.Lock()
        self._writer = Periodic("history-writer", FLUSH_SECONDS, self._turn)
        self._last_prune = 0.0

    # -- writing --------------------------------------------------------------------------

    def record_request(self, record: RequestRecord) -> None:
        self._requests.append(record)

    def record_usage(self, record: UsageRecord) -> None:
        self._usage.append(record)

    def flush(self) -> None:
        """Write what is queued, in one transaction."""
        with self._flush_lock:
            requests = _drain(self._requests)
            usage = _drain(self._usage)
            if not requests and not usage:
                return
            try:
                with self.database.writing() as session:
                    if requests:
                        session.execute(insert(RequestLogRow), [asdict(r) for r in requests])
                    if usage:
                        session.execute(insert(UsageRow), [asdict(u) for u in usage])
            except Exception:
                log.exception(
                    "cannot write %d request(s) and %d usage record(s) to the history; "
                    "they are retried",
                    len(requests),
                    len(usage),
                )
                self._requests.extendleft(reversed(requests))
                self._usage.extendleft(reversed(usage))

    def prune(self, now: datetime | None = None) -> int:
        """Delete what is older than the retention period; returns how many rows went."""
        cutoff = (now or utcnow()) - self.retention
        with self.database.writing() as session:
            removed = session.execute(delete(RequestLogRow).where(RequestLogRow.at < cutoff))
            used = session.execute(delete(UsageRow).where(UsageRow.finished_at < cutoff))
            return int(removed.rowcount or 0) + int(used.rowcount or 0)  # type: ignore[attr-defined]

    def start(self) -> None:
        self._writer.start()

    def stop(self) -> None:
        self._writer.stop()
        self.flush()

    def _turn(self) -> None:
        self.flush()
        now = utcnow().timestamp()
        if now - self._last_prune >= PRUNE_SECONDS:
            self._last_prune = now
            try:
                self.prune()
            except Exception:
                log.exception("cannot prune the request log")

    # -- reading --------------------------------------------------------------------------

    def requests(
        self,
        *,
        after: int = 0,
        limit: int = 100,
        service: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[LoggedRequest]:
        """Logged requests with an id above `after`, oldest first."""
        self.flush()
        query = select(RequestLogRow).where(RequestLogRow.id > after)
        if service is not None:
            query = query.where(RequestLogRow.service == service)
        if start is not None:
            query = query.where(RequestLogRow.at >= start)
        if end is not None:
            query = query.where(RequestLogRow.at < end)
        with self.database.session() as session:
            rows = session.scalars(query.order_by(RequestLogRow.id).limit(limit))
            return [_logged(row) for row in rows]

    def requests_between(self, start: datetime, end: datetime) -> list[RequestRecord]:
        self.flush()
        with self.database.session() as session:
            rows = session.scalars(
                select(RequestLogRow).where(RequestLogRow.at >= start, RequestLogRow.at < end)
            )
            return [_logged(row) for row in rows]

    def usage_between(self, start: datetime, end: datetime) -> list[UsageRecord]:
        """Attempts that ran during [start, end), with the caller who asked for their job."""
        self.flush()
        with self.database.session() as session:
            rows = session.scalars(
                select(UsageRow).where(UsageRow.finished_at >= start, UsageRow.started_at < end)
            )
            return [
                UsageRecord(
                    row.job_id,
                    row.service,
                    row.source,
                    row.attempt,
                    row.outcome,
                    row.started_at,
                    row.finished_at,
                    row.cpu_cores,
                    row.memory_bytes,
                )
                for row in rows
            ]

    def callers(self, job_ids: Sequence[str]) -> dict[str, str]:
        """Who asked for each job, from the request log (jobs from storage events have none)."""
        found: dict[str, str] = {}
        with self.database.session() as session:
            for index in range(0, len(job_ids), 500):
                chunk = job_ids[index : index + 500]
                rows = session.execute(
                    select(RequestLogRow.job_id, RequestLogRow.user).where(
                        RequestLogRow.job_id.in_(chunk)
                    )
                )
                found.update({str(job): str(user) for job, user in rows})
        return found


def _drain(queue: deque[T]) -> list[T]:
    drained: list[T] = []
    while queue:
        try:
            drained.append(queue.popleft())
        except IndexError:
            break
    return drained


def _logged(row: RequestLogRow) -> LoggedRequest:
    return LoggedRequest(
        at=row.at,
        kind=row.kind,
        service=row.service,
        method=row.method,
        path=row.path,
        status=row.status,
        duration=row.duration,
        client_ip=row.client_ip,
        user=row.user,
        job_id=row.job_id,
        id=row.id,
    )
