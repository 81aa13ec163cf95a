"""OSCAR's usage metrics (`/system/metrics[...]`) summed from the history over a time range.

CPU hours are the cores a service reserves (`cpu`) times the time its attempts ran inside the
range; memory is in GiB-hours the same way (OSCAR has no memory figure; ours is an added
field). A request is one `/job` or `/run` call in the request log, whatever its answer, as
OSCAR counts them. Jobs started by a storage event belong to the user who wrote the object:
every S3 write is signed with the admin's keys, so that is the admin.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from oscarpy.observability.history import History, RequestRecord, UsageRecord

SECONDS_PER_HOUR = 3600.0
GIB = 1024**3

#: OSCAR's metric keys; those a per-service value query answers are in `SERVICE_METRICS`.
METRIC_KEYS = (
    "services-count",
    "cpu-hours",
    "gpu-hours",
    "requests-sync-per-service",
    "requests-async-per-service",
    "requests-exposed-per-service",
    "requests-per-user",
    "users-per-service",
    "countries-count",
    "countries-list",
    "memory-hours",
)
SERVICE_METRICS = (
    "cpu-hours",
    "gpu-hours",
    "memory-hours",
    "requests-sync-per-service",
    "requests-async-per-service",
    "requests-exposed-per-service",
    "users-per-service",
)
UNITS = {"cpu-hours": "hours", "gpu-hours": "hours", "memory-hours": "GiB-hours"}
GROUPS = ("service", "user", "country")


class UnsupportedMetric(ValueError):
    """A metric key or grouping this query cannot answer."""


@dataclass
class _Tally:
    cpu_hours: float = 0.0
    memory_gib_hours: float = 0.0
    sync: int = 0
    asynchronous: int = 0
    users: set[str] = field(default_factory=set)

    @property
    def requests(self) -> int:
        return self.sync + self.asynchronous


@dataclass(frozen=True)
class UsagePeriod:
    """The history of one time range, read once and summed several ways."""

    start: datetime
    end: datetime
    requests: list[RequestRecord]
    usage: list[UsageRecord]
    callers: dict[str, str]
    default_user: str

    @classmethod
    def read(
        cls, history: History, start: datetime, end: datetime, default_user: str
    ) -> UsagePeriod:
        usage = history.usage_between(start, end)
        callers = history.callers(sorted({record.job_id for record in usage}))
        return cls(start, end, history.requests_between(start, end), usage, callers, default_user)

    def _hours(self, record: UsageRecord) -> float:
        begin = max(record.started_at, self.start)
        finish = min(record.finished_at, self.end)
        return max((finish - begin).total_seconds(), 0.0) / SECONDS_PER_HOUR

    def tally(self, key: str) -> dict[str, _Tally]:
        """Totals per service (`key="service"`) or per user (`key="user"`)."""
        tallies: dict[str, _Tally] = {}
        for record in self.usage:
            owner = record.service if key == "service" else self._user_of(record.job_id)
            tally = tallies.setdefault(owner, _Tally())
            hours = self._hours(record)
            tally.cpu_hours += record.cpu_cores * hours
            tally.memory_gib_hours += record.memory_bytes / GIB * hours
        for request in self.requests:
            owner = request.service if key == "service" else request.user
            tally = tallies.setdefault(owner, _Tally())
            if request.kind == "sync":
                tally.sync += 1
            else:
                tally.asynchronous += 1
            if request.user:
                tally.users.add(request.user if key == "service" else request.service)
        return tallies

    def _user_of(self, job_id: str) -> str:
        return self.callers.get(job_id, self.default_user)

    # -- OSCAR's answers ------------------------------------------------------------------

    def summary(self, services_active: int) -> dict[str, Any]:
        by_service = self.tally("service")
        users = sorted({request.user for request in self.requests if request.user})
        return {
            "start": self.start,
            "end": self.end,
            "totals": {
                "services_count_active": services_active,
                "services_count_total": len({request.service for request in self.requests}),
                "cpu_hours_total": sum(t.cpu_hours for t in by_service.values()),
                "gpu_hours_total": 0.0,
                "memory_gib_hours_total": sum(t.memory_gib_hours for t in by_service.values()),
                "requests_count_total": len(self.requests),
                "requests_count_sync": sum(t.sync for t in by_service.values()),
                "requests_count_async": sum(t.asynchronous for t in by_service.values()),
                "requests_count_exposed": 0,
                "countries_count": 0,
                "countries": [],
                "users_count": len(users),
                "users": users,
            },
            "sources": SOURCES,
        }

    def breakdown(self, group_by: str, include_users: bool = False) -> dict[str, Any]:
        group = group_by.lower()
        if group not in GROUPS:
            raise UnsupportedMetric("unsupported group_by")
        items: list[dict[str, Any]] = []
        if group == "country":
            # No client is located: every request is from the country "unknown", as OSCAR
            # reports requests it cannot place.
            if self.requests:
                users = {request.user for request in self.requests if request.user}
                count = len(self.requests)
                items.append(
                    {
                        "key": "unknown",
                        "executions_count": count,
                        "unique_users_count": len(users),
                        "countries": [{"country": "unknown", "request_count": count}],
                    }
                )
        elif group == "service":
            for key, tally in sorted(self.tally("service").items()):
                item: dict[str, Any] = {
                    "key": key,
                    "requests_count_total": tally.requests,
                    "requests_count_sync": tally.sync,
                    "requests_count_async": tally.asynchronous,
                    "requests_count_exposed": 0,
                    "unique_users_count": len(tally.users),
                    "countries": [],
                    "cpu_hours": tally.cpu_hours,
                    "memory_gib_hours": tally.memory_gib_hours,
                }
                if include_users:
                    item["users"] = sorted(tally.users)
                items.append(item)
        else:
            for key, tally in sorted(self.tally("user").items()):
                items.append(
                    {
                        "key": key,
                        "executions_count": tally.requests,
                        "countries": [],
                        "cpu_hours": tally.cpu_hours,
                        "memory_gib_hours": tally.memory_gib_hours,
                    }
                )
        return {"start": self.start, "end": self.end, "group_by": group, "items": items}

    def value(self, service: str, metric: str) -> dict[str, Any]:
        """One metric of one service (OSCAR's `MetricValueResponse`)."""
        if metric not in SERVICE_METRICS:
            raise UnsupportedMetric("unsupported metric for value query")
        tally = self.tally("service").get(service, _Tally())
        values = {
            "cpu-hours": tally.cpu_hours,
            "gpu-hours": 0.0,
            "memory-hours": tally.memory_gib_hours,
            "requests-sync-per-service": float(tally.sync),
            "requests-async-per-service": float(tally.asynchronous),
            "requests-exposed-per-service": 0.0,
            "users-per-service": float(len(tally.users)),
        }
        answer: dict[str, Any] = {
            "service_id": service,
            "metric": metric,
            "start": self.start,
            "end": self.end,
            "value": values[metric],
        }
        if metric in UNITS:
            answer["unit"] = UNITS[metric]
        answer["sources"] = SOURCES
        return answer

    def service_metrics(self, service: str) -> dict[str, Any]:
        """Every per-service metric (OSCAR's `ServiceMetricsResponse`)."""
        metrics = []
        for metric in SERVICE_METRICS:
            value = self.value(service, metric)
            value.pop("service_id")
            value.pop("start")
            value.pop("end")
            metrics.append(value)
        return {"service_name": service, "start": self.start, "end": self.end, "metrics": metrics}


SOURCES = [
    {"name": "request-logs", "status": "ok"},
    {"name": "usage-metrics", "status": "ok"},
]

_CSV_COLUMNS = {
    "user": ["key", "membership", "executions_count", "countries", "cpu_hours", "memory_gib_hours"],
    "service": [
        "key",
        "membership",
        "requests_count_total",
        "requests_count_sync",
        "requests_count_async",
        "requests_count_exposed",
        "unique_users_count",
        "countries",
        "cpu_hours",
        "memory_gib_hours",
    ],
    "country": ["key", "membership", "executions_count", "unique_users_count", "countries"],
}


def breakdown_csv(breakdown: dict[str, Any]) -> str:
    """OSCAR's CSV export of a breakdown (countries as `country:count|...`), our hours after."""
    columns = _CSV_COLUMNS[breakdown["group_by"]]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for item in breakdown["items"]:
        writer.writerow([_cell(column, item) for column in columns])
    return out.getvalue()


def _cell(column: str, item: dict[str, Any]) -> str:
    value = item.get(column, "")
    if column == "countries":
        return "|".join(f"{c['country']}:{c['request_count']}" for c in _countries(value))
    return str(value)


def _countries(value: Iterable[dict[str, Any]] | str) -> Iterable[dict[str, Any]]:
    return [] if isinstance(value, str) else value
