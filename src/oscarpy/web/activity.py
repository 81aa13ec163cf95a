"""What the overview shows: jobs finished over time and the capacity running jobs hold.

The job engine answers the queries (`Engine.finished_since`, `Engine.running_by_service`);
this module cuts their answers into what the page draws.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from oscarpy.db import utcnow
from oscarpy.engine import JobStatus
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


def finished_over_time(
    finished_since: Callable[[datetime], list[tuple[JobStatus, datetime]]],
    window: Window,
    now: datetime | None = None,
) -> list[Slot]:
    """Jobs that succeeded or failed in each slot of the window, oldest slot first."""
    now = now or utcnow()
    # Slots end at the next whole slot boundary after now, so the newest one is the current.
    seconds = window.slot.total_seconds()
    end_epoch = (int(now.timestamp() // seconds) + 1) * seconds
    end = datetime.fromtimestamp(end_epoch, tz=now.tzinfo)
    start = end - window.slot * window.slots
    counts = [[0, 0] for _ in range(window.slots)]
    for status, finished in finished_since(start):
        index = int((finished - start) / window.slot)
        if 0 <= index < window.slots:
            counts[index][0 if status == JobStatus.SUCCEEDED else 1] += 1
    return [
        Slot(start + window.slot * index, succeeded, failed)
        for index, (succeeded, failed) in enumerate(counts)
    ]


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
