"""What the overview and a service's page show: jobs finished over time, how long jobs waited
and ran (percentiles per slot), and the capacity running jobs hold.

Read-only queries over the job ledger's tables, kept in the engine so that the dashboard never
touches the tables itself; they never write (only `oscarpy.engine.ledger` does).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from oscarpy.db import Database, utcnow
from oscarpy.engine.records import Job, JobAttempt, JobSource, JobStatus
from oscarpy.services.model import Service


@dataclass(frozen=True)
class Window:
    """One time range the chart can show, cut into equal slots."""

    name: str
    label: str
    slot: timedelta
    slots: int


WINDOWS = {
    "1h": Window("1h", "last hour", timedelta(minutes=1), 60),
    "24h": Window("24h", "last 24 hours", timedelta(hours=1), 24),
    "7d": Window("7d", "last 7 days", timedelta(hours=6), 28),
}


@dataclass(frozen=True)
class Slot:
    start: datetime
    succeeded: int
    failed: int


def window_start(window: Window, now: datetime | None = None) -> datetime:
    """Where the window's first slot starts: slots end at the next whole slot boundary after
    now, so the newest one is the current."""
    now = now or utcnow()
    seconds = window.slot.total_seconds()
    end_epoch = (int(now.timestamp() // seconds) + 1) * seconds
    return datetime.fromtimestamp(end_epoch, tz=now.tzinfo) - window.slot * window.slots


def slot_index(window: Window, start: datetime, moment: datetime) -> int | None:
    index = int((moment - start) / window.slot)
    return index if 0 <= index < window.slots else None


def finished_over_time(
    database: Database, window: Window, now: datetime | None = None, service: str | None = None
) -> list[Slot]:
    """Jobs (of one service, or all) that succeeded or failed in each slot of the window,
    oldest slot first."""
    start = window_start(window, now)
    counts = [[0, 0] for _ in range(window.slots)]
    query = select(Job.status, Job.finished_at).where(
        Job.finished_at >= start,
        Job.status.in_([JobStatus.SUCCEEDED.value, JobStatus.FAILED.value]),
    )
    if service is not None:
        query = query.where(Job.service == service)
    with database.session() as session:
        rows = session.execute(query).all()
    for status, finished in rows:
        index = slot_index(window, start, finished) if finished is not None else None
        if index is not None:
            counts[index][0 if status == JobStatus.SUCCEEDED else 1] += 1
    return [
        Slot(start + window.slot * index, succeeded, failed)
        for index, (succeeded, failed) in enumerate(counts)
    ]


@dataclass(frozen=True)
class Percentiles:
    p50: float
    p95: float
    count: int


def percentiles(values: list[float]) -> Percentiles | None:
    """Nearest-rank median and 95th percentile; `None` for no values."""
    if not values:
        return None
    ordered = sorted(values)

    def rank(fraction: float) -> float:
        return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]

    return Percentiles(rank(0.5), rank(0.95), len(ordered))


@dataclass(frozen=True)
class TimingSlot:
    start: datetime
    wait: Percentiles | None
    run: Percentiles | None


@dataclass(frozen=True)
class Timings:
    """Wait and run time percentiles per slot and over the whole window."""

    slots: list[TimingSlot]
    wait: Percentiles | None
    run: Percentiles | None


def timings_over_time(
    database: Database, window: Window, now: datetime | None = None, service: str | None = None
) -> Timings:
    """How long the attempts that ended in each slot ran, and how long jobs waited for their
    first attempt (`/run` requests wait for no queue and are left out of the waits)."""
    start = window_start(window, now)
    waits: list[list[float]] = [[] for _ in range(window.slots)]
    runs: list[list[float]] = [[] for _ in range(window.slots)]
    query = (
        select(
            JobAttempt.number,
            JobAttempt.started_at,
            JobAttempt.finished_at,
            Job.created_at,
            Job.source,
        )
        .join(Job, Job.id == JobAttempt.job_id)
        .where(JobAttempt.finished_at >= start)
    )
    if service is not None:
        query = query.where(Job.service == service)
    with database.session() as session:
        rows = session.execute(query).all()
    for number, started, finished, created, source in rows:
        if finished is None or (index := slot_index(window, start, finished)) is None:
            continue
        runs[index].append(max((finished - started).total_seconds(), 0.0))
        if number == 1 and source != JobSource.RUN:
            waits[index].append(max((started - created).total_seconds(), 0.0))
    slots = [
        TimingSlot(start + window.slot * index, percentiles(wait), percentiles(run))
        for index, (wait, run) in enumerate(zip(waits, runs, strict=True))
    ]
    every_wait = [value for values in waits for value in values]
    every_run = [value for values in runs for value in values]
    return Timings(slots, percentiles(every_wait), percentiles(every_run))


def running_by_service(database: Database) -> dict[str, int]:
    with database.session() as session:
        rows = session.execute(
            select(Job.service, func.count())
            .where(Job.status == JobStatus.RUNNING.value)
            .group_by(Job.service)
        ).all()
    return {str(service): int(count) for service, count in rows}


@dataclass(frozen=True)
class Usage:
    """How much of a resource running jobs reserve, of what the dispatcher may hand out."""

    used: float
    total: float

    @property
    def percent(self) -> int:
        return min(100, round(100 * self.used / self.total)) if self.total > 0 else 0


def reserved(services: list[Service], running: dict[str, int]) -> tuple[float, int]:
    """CPU cores and memory bytes the running jobs reserve, from their services' requests."""
    by_name = {service.name: service for service in services}
    cpu = 0.0
    memory = 0
    for name, count in running.items():
        service = by_name.get(name)
        if service is not None:
            cpu += service.cpu_cores * count
            memory += service.memory_bytes * count
    return cpu, memory


def host_load() -> Usage:
    """The host's one-minute load average against its cores."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return Usage(os.getloadavg()[0], float(cores))
