"""What one file job costs the state DB: its write transactions, counted on the real engine
with the process runtime (the per-job path without a container, where the DB is the cost)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event

from oscarpy.engine.records import JobStatus
from oscarpy.engine.runtimes.process import ProcessRuntime
from tests.support.jobs import running_engine

JOBS = 6
WRITES_PER_JOB = 5
"""The upload's commit, the intake's, the claim, the execution's id (before the script runs, so
that a restarted server adopts it) and the end with the log's last lines."""


def test_a_short_job_costs_five_write_transactions(tmp_path: Path) -> None:
    with running_engine(tmp_path / "data", runtime=ProcessRuntime()) as platform:
        service, bucket = platform.in_out_service(
            'echo copying; cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/"\n'
        )
        platform.put(bucket, "in/first.txt", b"x")
        platform.finished_jobs(service, 1)
        writes: list[str] = []

        def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if statement.startswith("BEGIN IMMEDIATE"):
                writes.append(statement)

        engine = platform.database.engine
        event.listen(engine, "before_cursor_execute", count)
        try:
            for index in range(JOBS):
                platform.put(bucket, f"in/{index}.txt", b"x" * 1024)
                platform.finished_jobs(service, index + 2)
                platform.object_appears(bucket, f"out/{index}.txt")
        finally:
            event.remove(engine, "before_cursor_execute", count)
        jobs = platform.jobs(service)
        assert all(job.status is JobStatus.SUCCEEDED for job in jobs)
        # Nothing of the log is lost by writing it with the job's end.
        log = platform.engine.ledger.read_log(jobs[0].id)
        assert "copying" in log and "1 output file(s) uploaded" in log
        assert len(writes) <= WRITES_PER_JOB * JOBS, f"{len(writes) / JOBS} writes per job"
