"""Dispatch order and capacity, with the real ledger and an execution that waits to be told."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from oscarpy.db import Database
from oscarpy.engine.dispatcher import Capacity, Demand, Dispatcher
from oscarpy.engine.ledger import Claim, Ledger, NewJob, ReadyJobs
from oscarpy.engine.outcomes import AttemptOutcome
from oscarpy.engine.records import JobSource, JobStatus

GiB = 1024**3


class BlockingExecution:
    """Records which jobs started and keeps them running until released."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.started: list[Claim] = []
        self.release = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, claim: Claim, _cancelled: threading.Event) -> None:
        with self._lock:
            self.started.append(claim)
        self.release.wait(10)
        self.ledger.finish(claim.job.id, claim.attempt, AttemptOutcome.success())

    def services(self) -> list[str]:
        with self._lock:
            return [claim.job.service for claim in self.started]


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    database = Database(f"sqlite:///{tmp_path / 'state.db'}")
    database.migrate()
    yield Ledger(database)
    database.close()


def add(ledger: Ledger, service: str, count: int) -> None:
    for index in range(count):
        ledger.add_job(NewJob(service, JobSource.INVOCATION, job_id=f"{service}-{index:04}"))


def wait_until(condition: object, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached")


def another_round(ledger: Ledger) -> None:
    """Wait until the dispatcher has started two rounds (so finished one) from now: what it
    did not start by then, it chose not to. Each round asks the ledger for ready services."""
    calls = [0]
    ready_services = ledger.ready_services

    def counted() -> ReadyJobs:
        calls[0] += 1
        return ready_services()

    ledger.ready_services = counted  # type: ignore[method-assign]
    try:
        wait_until(lambda: calls[0] >= 2)
    finally:
        ledger.ready_services = ready_services  # type: ignore[method-assign]


def run(
    ledger: Ledger, capacity: Capacity, demands: dict[str, Demand]
) -> tuple[Dispatcher, BlockingExecution]:
    execution = BlockingExecution(ledger)
    dispatcher = Dispatcher(ledger, capacity, demands.get, execution, poll_seconds=0.05)
    dispatcher.start()
    return dispatcher, execution


def test_a_service_with_one_job_is_not_starved_by_one_with_many(ledger: Ledger) -> None:
    add(ledger, "busy", 200)
    add(ledger, "quiet", 1)
    demand = Demand(cpu=1, memory=GiB)
    dispatcher, execution = run(ledger, Capacity(2, 8 * GiB), {"busy": demand, "quiet": demand})
    try:
        wait_until(lambda: len(execution.started) == 2)
        another_round(ledger)
        assert sorted(execution.services()) == ["busy", "quiet"]
    finally:
        execution.release.set()
        dispatcher.stop(5)


def test_running_jobs_stay_within_cpu_memory_and_concurrency(ledger: Ledger) -> None:
    add(ledger, "cpu", 10)
    add(ledger, "memory", 10)
    add(ledger, "capped", 10)
    demands = {
        "cpu": Demand(cpu=0.5, memory=1),
        "memory": Demand(cpu=0.01, memory=3 * GiB),
        "capped": Demand(cpu=0.01, memory=1, max_concurrency=2),
    }
    dispatcher, execution = run(ledger, Capacity(2, 7 * GiB), demands)
    try:
        wait_until(lambda: len(execution.started) >= 7)
        another_round(ledger)
        services = execution.services()
        assert services.count("memory") == 2  # 3 GiB each within 7 GiB
        assert services.count("capped") == 2
        assert services.count("cpu") == 3  # 3 × 0.5 + 0.04 of the others within 2 cores
        assert len(dispatcher.running_job_ids()) == 7
    finally:
        execution.release.set()
        dispatcher.stop(5)


def test_a_job_larger_than_the_host_runs_alone(ledger: Ledger) -> None:
    add(ledger, "huge", 2)
    dispatcher, execution = run(ledger, Capacity(1, GiB), {"huge": Demand(cpu=4, memory=GiB)})
    try:
        wait_until(lambda: len(execution.started) == 1)
        another_round(ledger)
        assert len(execution.started) == 1
        execution.release.set()
        wait_until(lambda: len(execution.started) == 2)
    finally:
        execution.release.set()
        dispatcher.stop(5)


def test_jobs_of_an_unknown_service_wait(ledger: Ledger) -> None:
    add(ledger, "unknown", 1)
    add(ledger, "known", 2)
    one_at_a_time = {"known": Demand(cpu=0.1, memory=1, max_concurrency=1)}
    dispatcher, execution = run(ledger, Capacity(1, GiB), one_at_a_time)
    try:
        wait_until(lambda: len(execution.started) == 1)
        execution.release.set()
        # The second known job starts in a later round, so the round that saw both services
        # ended: the dispatcher was alive and passed over the unknown one.
        wait_until(lambda: len(execution.started) == 2)
        assert execution.services() == ["known", "known"]
        assert ledger.get("unknown-0000").status is JobStatus.PENDING
    finally:
        execution.release.set()
        dispatcher.stop(1)


class HandingOver:
    """Ends each job as the engine does: with the dispatcher's successor, so that the next
    ready job of the service is claimed in the same commit and runs in the same thread."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.dispatcher: Dispatcher | None = None
        self.seconds = 0.0
        self.ran: list[tuple[str, str]] = []
        """(job id, worker thread) in the order the jobs ran."""

    def __call__(self, claim: Claim, _cancelled: threading.Event) -> None:
        self.ran.append((claim.job.id, threading.current_thread().name))
        time.sleep(self.seconds)
        assert self.dispatcher is not None
        successor = self.dispatcher.successor(claim.job.id)
        self.ledger.finish(
            claim.job.id, claim.attempt, AttemptOutcome.success(), successor=successor
        )


def test_an_ending_job_hands_its_place_to_the_next_of_its_service_but_not_past_another(
    ledger: Ledger,
) -> None:
    add(ledger, "busy", 14)
    execution = HandingOver(ledger)
    one_at_a_time = Demand(cpu=1, memory=1, max_concurrency=1)
    dispatcher = Dispatcher(
        ledger, Capacity(1, GiB), {"busy": one_at_a_time, "quiet": one_at_a_time}.get, execution
    )
    execution.dispatcher = dispatcher
    dispatcher.start()
    try:
        wait_until(lambda: len(execution.ran) >= 6)
        execution.seconds = 0.3  # time for the round that the new job below wakes
        slow = len(execution.ran) + 1
        wait_until(lambda: len(execution.ran) >= slow)  # a job that takes that time runs
        # One claim by the dispatcher; each next job was handed over in the same thread.
        assert [job for job, _ in execution.ran[:6]] == [f"busy-{i:04}" for i in range(6)]
        assert len({thread for _, thread in execution.ran[:6]}) == 1

        ledger.add_job(NewJob("quiet", JobSource.INVOCATION, job_id="quiet-0000"))
        started_before = len(execution.ran)
        dispatcher.wake()
        wait_until(lambda: len(execution.ran) == 15)
        # The quiet service's job waited: the busy job's place went back to the dispatcher,
        # whose round gave it to the service with fewer jobs started lately.
        assert execution.ran[started_before][0] == "quiet-0000"
    finally:
        dispatcher.stop(5)
