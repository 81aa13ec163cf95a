"""Claims pending jobs and runs each in a worker thread, fairly and within capacity.

Fair: services take turns, the one with the fewest running jobs first, so one service with
10,000 pending jobs does not starve another with one. Within capacity: the sum of the running
jobs' CPU and memory stays within the host's (a job larger than the host runs alone), and
each service's `max_concurrency` holds. While jobs run their leases are renewed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from oscarpy.config import Settings
from oscarpy.db import utcnow
from oscarpy.engine.ledger import Claim, Ledger, Successor
from oscarpy.services import quantities

log = logging.getLogger(__name__)

_EPSILON = 1e-9


@dataclass(frozen=True)
class Demand:
    """What one job of a service takes while it runs."""

    cpu: float
    memory: int
    max_concurrency: int | None = None


@dataclass(frozen=True)
class Capacity:
    """What the host gives to jobs in all."""

    cpu: float
    memory: int


def host_capacity(settings: Settings) -> Capacity:
    """What jobs may use in all: the settings' `job_cpu`/`job_memory`, else the host's."""
    cpu = settings.job_cpu or float(os.cpu_count() or 1)
    if settings.job_memory:
        memory = quantities.memory_bytes(settings.job_memory)
    else:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return Capacity(cpu=cpu, memory=memory)


Execute = Callable[[Claim, threading.Event], None]
"""Runs a claimed job to its end in the calling (worker) thread; the event asks it to stop."""


@dataclass
class _Running:
    claim: Claim
    demand: Demand
    cancelled: threading.Event
    thread: threading.Thread
    done: threading.Event = field(default_factory=threading.Event)
    """Set when this job's execution returns (its thread may go on with a successor)."""


class _Handoff:
    """The `Successor` of one running job: its worker thread goes on with the next ready job
    of the same service, claimed in the ending attempt's own transaction (no dispatcher round,
    no claim commit, no new thread), while no other service waits for a place."""

    def __init__(self, dispatcher: Dispatcher, ending: _Running) -> None:
        self._dispatcher = dispatcher
        self._ending = ending

    def service(self) -> str | None:
        service = self._ending.claim.job.service
        return service if self._dispatcher.may_hand_over(self._ending, service) else None

    def take(self, claim: Claim) -> None:
        self._dispatcher.hand_over(self._ending, claim)


class Dispatcher:
    def __init__(
        self,
        ledger: Ledger,
        capacity: Capacity,
        demand_for: Callable[[str], Demand | None],
        execute: Execute,
        *,
        poll_seconds: float = 2.0,
        maintenance: Callable[[], object] | None = None,
    ) -> None:
        self.ledger = ledger
        self.capacity = capacity
        self._demand_for = demand_for
        self._execute = execute
        self._poll = poll_seconds
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._running: dict[str, _Running] = {}
        self._per_service: dict[str, int] = defaultdict(int)
        self._last_turn: dict[str, float] = {}
        self._handed: dict[str, _Running] = {}
        """Ending job id → the job its worker thread runs next."""
        self._ready: frozenset[str] = frozenset()
        """The services that had ready jobs at the last round."""
        self._thread: threading.Thread | None = None
        self._last_renewal = time.monotonic()
        self._maintenance = maintenance
        self._last_maintenance = time.monotonic()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="dispatcher", daemon=True)
        self._thread.start()

    def stop(self, grace: float) -> list[str]:
        """Stop claiming; wait up to `grace` seconds for running jobs; return those still going.

        Jobs still running are left to their containers: the next start adopts them.
        """
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
        deadline = time.monotonic() + grace
        for running in self._snapshot():
            running.thread.join(max(0.0, deadline - time.monotonic()))
        return [running.claim.job.id for running in self._snapshot()]

    def wake(self) -> None:
        self._wake.set()

    # -- what runs ------------------------------------------------------------------------

    def _snapshot(self) -> list[_Running]:
        with self._lock:
            return list(self._running.values())

    def running_job_ids(self) -> list[str]:
        with self._lock:
            return list(self._running)

    def cancel(self, job_id: str) -> bool:
        """Ask a running job to stop (its runtime execution is killed by the caller)."""
        with self._lock:
            running = self._running.get(job_id)
        if running is None:
            return False
        running.cancelled.set()
        return True

    def wait_for(self, job_id: str, timeout: float) -> None:
        with self._lock:
            running = self._running.get(job_id)
        if running is not None:
            running.done.wait(timeout)

    def successor(self, job_id: str) -> Successor | None:
        """What may run the next job of the service in the place of `job_id`, which ends."""
        with self._lock:
            running = self._running.get(job_id)
        if running is None or self._stopping.is_set():
            return None
        return _Handoff(self, running)

    def may_hand_over(self, ending: _Running, service: str) -> bool:
        """Whether the next job of `service` may take `ending`'s place: the dispatcher is
        running, no other service had ready jobs at its last round (they get the place through
        a round, which is fair), and the job fits once `ending` is gone."""
        if self._stopping.is_set() or self._ready - {service}:
            return False
        demand = self._demand_for(service)
        return demand is not None and self._fits(service, demand, leaving=ending)

    def hand_over(self, ending: _Running, claim: Claim) -> None:
        """Run `claim` in `ending`'s worker thread once `ending`'s execution returns."""
        # The same service as `ending`: its demand (no catalog read in the ledger's commit path).
        successor = _Running(claim, ending.demand, threading.Event(), ending.thread)
        with self._lock:
            self._running[claim.job.id] = successor
            self._handed[ending.claim.job.id] = successor
            self._per_service[claim.job.service] += 1
            self._last_turn[claim.job.service] = time.monotonic()

    def launch(self, claim: Claim, demand: Demand) -> None:
        """Run a claimed (or taken-over) job in its own worker thread."""
        cancelled = threading.Event()
        thread = threading.Thread(
            target=self._work, args=(claim, cancelled), name=f"job-{claim.job.id[:8]}", daemon=True
        )
        with self._lock:
            self._running[claim.job.id] = _Running(claim, demand, cancelled, thread)
            self._per_service[claim.job.service] += 1
            self._last_turn[claim.job.service] = time.monotonic()
        thread.start()

    def _work(self, claim: Claim, cancelled: threading.Event) -> None:
        """Run the job, then each job handed over to this thread (`hand_over`) in turn."""
        while True:
            try:
                self._execute(claim, cancelled)
            except Exception:
                log.exception("job %s: the worker failed", claim.job.id)
            finally:
                with self._lock:
                    ended = self._running.pop(claim.job.id, None)
                    self._per_service[claim.job.service] -= 1
                    successor = self._handed.pop(claim.job.id, None)
                if ended is not None:
                    ended.done.set()
            if successor is None:
                break
            claim, cancelled = successor.claim, successor.cancelled
        self._wake.set()

    # -- the loop -------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopping.is_set():
            wake_at: datetime | None = None
            try:
                self._renew_leases()
                wake_at = self._dispatch()
            except Exception:
                log.exception("dispatcher round failed; retrying shortly")
            self._wake.wait(self._sleep_time(wake_at))
            self._wake.clear()

    def _sleep_time(self, wake_at: datetime | None) -> float:
        """Until the next backoff ends, at most the poll interval. Ready jobs that did not fit
        need no earlier round: a job's end or a new job wakes the dispatcher."""
        if wake_at is None:
            return self._poll
        return max(0.005, min(self._poll, (wake_at - utcnow()).total_seconds()))

    def _renew_leases(self) -> None:
        lease = self.ledger.lease.total_seconds()
        if time.monotonic() - self._last_renewal >= lease / 3:
            self._last_renewal = time.monotonic()
            self.ledger.renew_leases(self.running_job_ids())
        if self._maintenance is not None and time.monotonic() - self._last_maintenance >= lease:
            self._last_maintenance = time.monotonic()
            self._maintenance()

    def _fits(self, service: str, demand: Demand, leaving: _Running | None = None) -> bool:
        """Whether a job of `service` fits beside the running ones (but `leaving`)."""
        with self._lock:
            others = [running for running in self._running.values() if running is not leaving]
            if not others:
                return True  # even a job larger than the host runs, alone
            if demand.max_concurrency is not None:
                same = sum(1 for running in others if running.claim.job.service == service)
                if same >= demand.max_concurrency:
                    return False
            cpu = sum(running.demand.cpu for running in others)
            memory = sum(running.demand.memory for running in others)
        return (
            cpu + demand.cpu <= self.capacity.cpu + _EPSILON
            and memory + demand.memory <= self.capacity.memory
        )

    def _dispatch(self) -> datetime | None:
        """Start ready jobs, one per service per turn, until nothing more fits; returns when
        the next job waiting out a backoff becomes ready."""
        found = self.ledger.ready_services()
        ready = found.counts
        self._ready = frozenset(ready)
        candidates = set(ready)
        while candidates and not self._stopping.is_set():
            with self._lock:
                order = sorted(
                    candidates,
                    key=lambda name: (self._per_service[name], self._last_turn.get(name, 0.0)),
                )
            started = False
            for service in order:
                demand = self._demand_for(service)
                if demand is None or not self._fits(service, demand):
                    candidates.discard(service)
                    continue
                claim = self.ledger.claim_next(service)
                ready[service] -= 1
                if claim is None or ready[service] <= 0:
                    # Those counted are taken (jobs that became ready since wake us again).
                    candidates.discard(service)
                if claim is None:
                    continue
                self.launch(claim, demand)
                started = True
                break  # re-sort: the next turn goes to the service with fewest running
            if not started:
                break
        return found.wake_at
