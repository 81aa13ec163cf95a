"""Gauges read at scrape time from where the truth is kept: the job ledger, the store's tables,
the warm pools and the file system. Nothing here is counted in memory, so a restarted server
reports the same numbers as the one before it.

A collector that fails (the state DB is down, say) is logged and skipped: the rest of the
scrape still answers, and the missing series tell the operator where to look.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text

from oscarpy.db import Database
from oscarpy.engine.nodes import NodeStatus
from oscarpy.engine.records import Job, JobStatus
from oscarpy.storage.tables import BucketRow, ObjectRow

log = logging.getLogger(__name__)


class _Collector(Collector):
    """A collector whose readings may fail without failing the scrape."""

    def describe(self) -> Iterable[Metric]:
        return []  # registered without a trial collect(): that would read the DB at start-up

    def collect(self) -> Iterator[Metric]:
        try:
            yield from self.read()
        except Exception:
            log.exception("metrics: %s failed; its series are left out", type(self).__name__)

    def read(self) -> Iterable[Metric]:
        raise NotImplementedError


class LedgerCollector(_Collector):
    """`oscar_jobs{service,status}`: jobs in the ledger now, zeros included for every service."""

    def __init__(self, database: Database, services: Callable[[], Iterable[str]]) -> None:
        self.database = database
        self.services = services

    def read(self) -> Iterable[Metric]:
        with self.database.session() as session:
            rows = session.execute(
                select(Job.service, Job.status, func.count()).group_by(Job.service, Job.status)
            ).all()
        counts = {(str(service), str(status)): int(number) for service, status, number in rows}
        for service in self.services():
            for state in JobStatus:
                counts.setdefault((service, state.value), 0)
        family = GaugeMetricFamily(
            "oscar_jobs", "Jobs in the ledger, by service and status.", labels=["service", "status"]
        )
        for (service, status), number in sorted(counts.items()):
            family.add_metric([service, status], number)
        return [family]


class WarmPoolCollector(_Collector):
    """`oscar_warm_containers{service,state}`: warm `/run` containers busy and idle."""

    def __init__(self, pools: Callable[[], Iterable[tuple[str, int, int]]]) -> None:
        self.pools = pools

    def read(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "oscar_warm_containers",
            "Warm containers of /run pools, by service and state (busy or idle).",
            labels=["service", "state"],
        )
        for service, idle, busy in self.pools():
            family.add_metric([service, "busy"], busy)
            family.add_metric([service, "idle"], idle)
        return [family]


class StoreCollector(_Collector):
    """`oscar_bucket_objects` and `oscar_bucket_bytes`, per bucket of the embedded store."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def read(self) -> Iterable[Metric]:
        with self.database.session() as session:
            buckets = list(session.scalars(select(BucketRow.name)))
            rows = session.execute(
                select(
                    ObjectRow.bucket, func.count(), func.coalesce(func.sum(ObjectRow.size), 0)
                ).group_by(ObjectRow.bucket)
            ).all()
        usage = {str(bucket): (int(count), int(size)) for bucket, count, size in rows}
        objects = GaugeMetricFamily(
            "oscar_bucket_objects", "Objects stored, by bucket.", labels=["bucket"]
        )
        stored = GaugeMetricFamily(
            "oscar_bucket_bytes", "Bytes of object data stored, by bucket.", labels=["bucket"]
        )
        for bucket in sorted(set(buckets) | set(usage)):
            count, size = usage.get(bucket, (0, 0))
            objects.add_metric([bucket], count)
            stored.add_metric([bucket], size)
        return [objects, stored]


class DiskCollector(_Collector):
    """Free space where data is written, and the size of the state DB."""

    def __init__(self, database: Database, data_dir: Path) -> None:
        self.database = database
        self.data_dir = data_dir

    def read(self) -> Iterable[Metric]:
        families: list[Metric] = [
            GaugeMetricFamily(
                "oscar_data_dir_free_bytes",
                "Bytes free on the file system of the data directory (blobs, job work).",
                value=_free_bytes(self.data_dir),
            )
        ]
        database_file = self._sqlite_file()
        if database_file is not None:
            families.append(
                GaugeMetricFamily(
                    "oscar_state_db_free_bytes",
                    "Bytes free on the file system holding the SQLite state DB.",
                    value=_free_bytes(database_file.parent),
                )
            )
        families.append(
            GaugeMetricFamily(
                "oscar_state_db_bytes",
                "Size of the state DB (SQLite file and its write-ahead log, or the PostgreSQL "
                "database).",
                value=self._database_bytes(database_file),
            )
        )
        return families

    def _sqlite_file(self) -> Path | None:
        if self.database.dialect != "sqlite":
            return None
        name = self.database.engine.url.database
        return Path(name) if name and name != ":memory:" else None

    def _database_bytes(self, database_file: Path | None) -> int:
        if database_file is not None:
            return sum(
                path.stat().st_size
                for path in (database_file, database_file.with_name(database_file.name + "-wal"))
                if path.exists()
            )
        if self.database.dialect == "postgresql":
            with self.database.session() as session:
                return int(session.scalar(text("SELECT pg_database_size(current_database())")))
        return 0


def _free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


class NodeCollector(_Collector):
    """`oscar_node_*{node}`: each machine that runs jobs (one in local mode, every Swarm node in
    cluster mode), with its capacity, what running jobs reserve there and whether it is ready.
    The label is the node's name: as many series as machines."""

    def __init__(self, nodes: Callable[[], Iterable[NodeStatus]]) -> None:
        self.nodes = nodes

    def read(self) -> Iterable[Metric]:
        families = {
            name: GaugeMetricFamily(f"oscar_node_{name}", text, labels=["node"])
            for name, text in (
                ("cpu_cores", "CPU cores of the node."),
                ("cpu_reserved_cores", "CPU cores reserved by the jobs running on the node."),
                ("memory_bytes", "Memory of the node."),
                ("memory_reserved_bytes", "Memory reserved by the jobs running on the node."),
                ("jobs_running", "Jobs running on the node."),
                ("ready", "1 when the node is up and takes new jobs, else 0."),
            )
        }
        for node in self.nodes():
            for name, value in (
                ("cpu_cores", node.cpu_cores),
                ("cpu_reserved_cores", node.cpu_reserved),
                ("memory_bytes", node.memory_bytes),
                ("memory_reserved_bytes", node.memory_reserved),
                ("jobs_running", node.jobs_running),
                ("ready", int(node.ready and node.availability == "active")),
            ):
                families[name].add_metric([node.name], value)
        return list(families.values())
