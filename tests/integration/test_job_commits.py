"""What one file job costs the state DB: its write transactions, counted on the real engine
with the process runtime (the per-job path without a container, where the DB is the cost).

Every transaction is counted, the object store's group commits on the driver's own
connection included: a trace on each pooled SQLite connection sees every `BEGIN IMMEDIATE`."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event

from oscarpy.engine.records import JobStatus
from oscarpy.engine.runtimes.process import ProcessRuntime
from tests.support.jobs import Harness, running_engine

JOBS = 6
WRITES_PER_JOB = 5
"""A job alone: the upload's commit, the intake's, the claim, the end (with the log's last
lines and the execution's id: recovery finds executions by their labels, not by this record)
and the output's upload."""
BURST = 24
CONCURRENCY = 2
WRITES_PER_BURST_JOB = 4
"""A job of a burst: its claim shares the commit of the end of the job whose place it takes
(but the first `CONCURRENCY`, which the dispatcher claims)."""
SCRIPT = 'echo copying; cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/"\n'


@contextmanager
def counting_writes(platform: Harness) -> Iterator[list[str]]:
    """Every write transaction begun on the state DB while the block runs."""
    writes: list[str] = []
    counting = threading.Event()
    counting.set()

    def count(statement: str) -> None:
        if counting.is_set() and statement.startswith("BEGIN IMMEDIATE"):
            writes.append(statement)

    def trace(dbapi_connection: Any, *_args: Any) -> None:
        assert isinstance(dbapi_connection, sqlite3.Connection)
        dbapi_connection.set_trace_callback(count)

    engine = platform.database.engine
    event.listen(engine, "checkout", trace)
    try:
        yield writes
    finally:
        counting.clear()
        event.remove(engine, "checkout", trace)


def test_a_short_job_costs_five_write_transactions(tmp_path: Path) -> None:
    with running_engine(tmp_path / "data", runtime=ProcessRuntime()) as platform:
        service, bucket = platform.in_out_service(SCRIPT)
        platform.put(bucket, "in/first.txt", b"x")
        platform.finished_jobs(service, 1)
        with counting_writes(platform) as writes:
            for index in range(JOBS):
                platform.store.put_bytes(bucket, f"in/{index}.txt", b"x" * 1024)
                platform.finished_jobs(service, index + 2)
                platform.object_appears(bucket, f"out/{index}.txt")
        jobs = platform.jobs(service)
        assert all(job.status is JobStatus.SUCCEEDED for job in jobs)
        # Nothing of the log is lost by writing it with the job's end, nor the execution.
        log = platform.engine.ledger.read_log(jobs[0].id)
        assert "copying" in log and "1 output file(s) uploaded" in log
        attempts = platform.engine.ledger.attempts(jobs[0].id)
        assert attempts[0].execution_id and attempts[0].node
        assert len(writes) <= WRITES_PER_JOB * JOBS, f"{len(writes) / JOBS} writes per job"


def test_the_jobs_of_a_burst_cost_four_write_transactions_each(tmp_path: Path) -> None:
    with running_engine(tmp_path / "data", runtime=ProcessRuntime()) as platform:
        service, bucket = platform.in_out_service(SCRIPT, max_concurrency=CONCURRENCY)
        platform.put(bucket, "in/first.txt", b"x")
        platform.finished_jobs(service, 1)
        with counting_writes(platform) as writes:
            for index in range(BURST):
                platform.store.put_bytes(bucket, f"in/{index}.txt", b"x" * 1024)
            platform.finished_jobs(service, BURST + 1)
            for index in range(BURST):
                platform.object_appears(bucket, f"out/{index}.txt")
        jobs = platform.jobs(service)
        assert all(job.status is JobStatus.SUCCEEDED for job in jobs)
        assert len(jobs) == BURST + 1  # one job per upload
        assert all(
            attempt.execution_id
            for job in jobs
            for attempt in platform.engine.ledger.attempts(job.id)
        )
        allowed = WRITES_PER_BURST_JOB * BURST + CONCURRENCY
        assert len(writes) <= allowed, f"{len(writes) / BURST} writes per job"
