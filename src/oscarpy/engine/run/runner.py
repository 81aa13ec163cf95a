"""One `/run` request from body to answer: recorded as a job of source `run`, run in a warm
container with the job contract (`engine.contract`), its outputs turned into the answer.

Per request, a fresh `<job id>/` directory (the contract's layout) is built outside every
container's reach and moved into the container's mounted directory with one rename. Once the
script has ended and nothing it started runs any more (the container is discarded otherwise),
its outputs are copied out without following links into a directory no container reaches, the
answer is made from that copy, and the request's directory is deleted before the container
takes its next request: nothing of one request is visible to the next.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from oscarpy.config import Settings
from oscarpy.db import utcnow
from oscarpy.engine import contract
from oscarpy.engine.core import Engine, host_capacity
from oscarpy.engine.errors import ContainerGone, InfrastructureError, StagingError
from oscarpy.engine.ledger import Ledger, NewJob
from oscarpy.engine.logstream import LineSink, LogLine, LogStream
from oscarpy.engine.outcomes import AttemptOutcome, OutcomeKind
from oscarpy.engine.records import JobSource
from oscarpy.engine.recovery import run_root
from oscarpy.engine.run import body
from oscarpy.engine.run.pool import GaveUp, Member, ServicePool, WarmPools
from oscarpy.engine.run.warm_jobs import WarmJobRuntime
from oscarpy.engine.runtimes.base import EndReason, RunResult
from oscarpy.engine.runtimes.warm import (
    ProcessRunRuntime,
    RunRuntime,
    StopSwitch,
)
from oscarpy.engine.safefs import open_beneath
from oscarpy.engine.spec import JobSpec
from oscarpy.log import MIN_SECRET_LENGTH
from oscarpy.services.errors import ServiceNotFound
from oscarpy.services.model import Service

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 20
ABANDONED_ANSWER_SECONDS = 3600
"""An answer is deleted once sent; one whose client vanished mid-way goes after this long."""
_ATTEMPTS_ON_DEAD_CONTAINERS = 3
RECORD_RUNNING_AFTER_SECONDS = 1.0
"""A request running longer is recorded (and listed) as running before it ends."""


@dataclass
class Answer:
    """What a `/run` request gets back: the job, how it ended, and what to send."""

    job_id: str
    outcome: AttemptOutcome
    file: Path | None = None
    """The single output, or the zip of several; `None` when the text answers."""
    text: bytes = b""
    """The script's output (stdout and stderr), capped at the job log limit."""
    log_tail: str = ""
    scratch: Path | None = None
    """Removed by `discard()` once the answer is sent."""
    files: list[str] = field(default_factory=list)
    secrets: tuple[bytes, ...] = ()
    """Masked in the answer (the service's token and secrets, unless it opts out)."""

    @property
    def succeeded(self) -> bool:
        return self.outcome.kind is OutcomeKind.SUCCEEDED

    def discard(self) -> None:
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


class _Capture:
    """Keeps the first `limit` bytes of the script's output for a text answer."""

    def __init__(self, stream: LogStream, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self.data = bytearray()

    def __call__(self, chunk: bytes) -> None:
        room = self._limit - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        self._stream.feed(chunk)


class Cancel(StopSwitch[Callable[[], None]]):
    """Stops one `invoke` from another thread (its client went away, or its job was deleted):
    the warm container running its script is killed, and so never takes another request; a
    call still waiting for a container stops waiting."""

    def __init__(self) -> None:
        super().__init__(lambda stop: stop())
        self.deleted = False

    def delete(self) -> None:
        """The call's job was deleted: stop it, and answer so (`DELETED`)."""
        self.deleted = True
        self()


class _Cancelled(Exception):
    """The request was cancelled (see `Cancel`); nothing more of it runs."""


CANCELLED = AttemptOutcome(
    OutcomeKind.SCRIPT_FAILED, "cancelled: the client went away", "cancelled"
)
DELETED = AttemptOutcome(
    OutcomeKind.SCRIPT_FAILED, "cancelled: the job was deleted while its script ran", "deleted"
)
"""Never recorded (the job is gone): the answer of a call whose job was deleted."""


class Runner:
    """Answers `/run` requests from warm pools; `start()`/`stop()` as a background service."""

    def __init__(self, settings: Settings, engine: Engine, runtime: RunRuntime | None = None):
        self.settings = settings
        self.engine = engine
        self.root = run_root(settings.data_dir, engine.ledger.owner)
        self.requests = self.root / "requests"
        self.staging = self.root / "staging"
        """Request directories are built here, where no container reaches, then moved in."""
        self.answers = self.root / "answers"
        self.spent = self.root / "spent"
        """Request directories, out of every container's sight, waiting to be deleted."""
        self._deleter = ThreadPoolExecutor(1, thread_name_prefix="run-cleanup")
        self.runtime = runtime or self._make_runtime()
        self._running: dict[str, _Call] = {}
        self._running_lock = threading.Lock()
        self._last_renewal = time.monotonic()
        self.pools = WarmPools(
            self.runtime,
            self.root / "containers",
            host_capacity(settings),
            engine.registry.list,
            idle_seconds=settings.run_idle_seconds,
            on_tick=self._upkeep,
            limits=engine.limits,
        )
        engine.registry.add_listener(self.pools.on_service_change)
        if self.runtime.name == "docker":
            # Services with `warm_jobs` run their file jobs in these pools too.
            engine.warm_jobs = WarmJobRuntime(self.pools, engine.catalog.get)
        engine.recovery.add_cleaner(lambda _instance: self.runtime.sweep())
        engine.operations.calls = self  # deleting a call's job stops it

    def _make_runtime(self) -> RunRuntime:
        runtime = self.engine.runtime
        if runtime.name == "docker":
            from oscarpy.engine.runtimes.docker import DockerRuntime
            from oscarpy.engine.runtimes.docker_warm import DockerRunRuntime

            assert isinstance(runtime, DockerRuntime)
            ledger = self.engine.ledger
            return DockerRunRuntime(
                runtime, ledger.owner, ledger.is_alive, self.settings.data_dir / "agent"
            )
        return ProcessRunRuntime(runtime)

    def start(self) -> None:
        for directory in (self.requests, self.staging, self.answers, self.spent):
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True)
        self.pools.start()

    def stop(self) -> None:
        self.pools.stop()
        self.runtime.close()
        self._deleter.shutdown(wait=True)

    def new_body_path(self) -> Path:
        """Where the API streams a request body before `invoke` (removed by `invoke`)."""
        return self.requests / uuid.uuid4().hex

    def running_calls(self, service: str) -> list[str]:
        with self._running_lock:
            return [job_id for job_id, run in self._running.items() if run.service == service]

    def delete_calls(self, job_ids: Collection[str]) -> None:
        """Stop the calls of `job_ids` that run here (their containers are killed) and record
        nothing more of them: their jobs are being deleted."""
        with self._running_lock:
            doomed = [self._running[job_id] for job_id in job_ids if job_id in self._running]
        for run in doomed:
            if run.record.forget():  # once: the upkeep may find it deleted again meanwhile
                run.cancel.delete()

    # -- one request ----------------------------------------------------------------------

    def invoke(
        self,
        service_name: str,
        raw_body: Path,
        *,
        binary: bool = False,
        cancel: Cancel | None = None,
    ) -> Answer:
        """Run the service on the body at `raw_body`; raises `InvalidBody` for a bad body and
        `ServiceNotFound`; every other failure is an `Answer` with the job's outcome. `cancel`
        stops the script from another thread."""
        job_id = str(uuid.uuid4())
        staged = self.requests / f"{job_id}.input"
        try:
            # The engine's catalog (read again on every change this process makes) spares a
            # read of the state DB per call; the registry answers for a service it has not seen.
            service = self.engine.catalog.get(service_name) or self.engine.registry.get(
                service_name
            )
            if service is None:
                raise ServiceNotFound(service_name)
            if binary:
                os.replace(raw_body, staged)
            else:
                body.stage_body(raw_body, staged)
            return self._run(service, job_id, staged, cancel or Cancel())
        finally:
            raw_body.unlink(missing_ok=True)
            staged.unlink(missing_ok=True)

    def _run(self, service: Service, job_id: str, staged: Path, cancel: Cancel) -> Answer:
        ledger = self.engine.ledger
        record = _RunRecord(
            ledger,
            NewJob(
                service.name,
                JobSource.RUN,
                event=contract.event_text_of_file(staged),
                job_id=job_id,
            ),
        )
        with self._running_lock:
            self._running[job_id] = _Call(service.name, record, cancel)
        stream = LogStream(record.log(self.engine.log), interval=1.0)
        capture = _Capture(stream, self.settings.job_log_limit)
        answer = Answer(job_id, AttemptOutcome.success(), secrets=_secrets(service))
        try:
            spec = self.engine.job_spec(service, record.view, 1)
            deadline = None if spec.timeout is None else time.monotonic() + spec.timeout
            pool = self.pools.pool(service)
            result, files = self._run_in_pool(
                pool, spec, staged, deadline, stream, capture, answer, cancel
            )
            answer.outcome = contract.outcome_of(
                result, f"answered with {len(files)} output file(s)"
            )
            if answer.succeeded and answer.scratch is not None:
                answer.files = files
                answer.file = body.answer_file(
                    answer.scratch / contract.OUTPUT_DIR, files, answer.secrets
                )
            answer.text = bytes(capture.data)
        except _Cancelled:
            answer.outcome = DELETED if cancel.deleted else CANCELLED
            answer.discard()
        except InfrastructureError as error:
            answer.outcome = AttemptOutcome(
                OutcomeKind.INFRASTRUCTURE_FAILED, str(error), error.reason
            )
        except ServiceNotFound:
            answer.outcome = AttemptOutcome(
                OutcomeKind.SCRIPT_FAILED, "the service was deleted meanwhile", "service"
            )
            answer.discard()
            raise
        except Exception as error:
            log.exception("run %s of %s: unexpected error", job_id, service.name)
            answer.outcome = AttemptOutcome(
                OutcomeKind.INFRASTRUCTURE_FAILED, f"internal error: {error!r}", "internal"
            )
            answer.discard()
            raise
        finally:
            stream.note(answer.outcome.message)
            record.finish(answer.outcome, stream.take())
            with self._running_lock:
                self._running.pop(job_id, None)
        if not answer.succeeded and not record.forgotten:
            answer.log_tail = _tail(ledger.read_log(job_id), LOG_TAIL_LINES)
        return answer

    def _run_in_pool(
        self,
        pool: ServicePool,
        spec: JobSpec,
        staged: Path,
        deadline: float | None,
        stream: LogStream,
        capture: _Capture,
        answer: Answer,
        cancel: Cancel,
    ) -> tuple[RunResult, list[str]]:
        for _ in range(_ATTEMPTS_ON_DEAD_CONTAINERS):
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            if not cancel.watch(pool.wake_waiters):
                raise _Cancelled
            try:
                member = pool.acquire(remaining, given_up=lambda: cancel.requested)
            except GaveUp as error:
                raise _Cancelled from error
            finally:
                cancel.watch(None)
            healthy = False
            built = self.staging / spec.job_id
            work_dir = member.container.host_dir / spec.job_id
            try:
                self._build(built, work_dir, spec, staged)
                environment = contract.environment(spec, member.container.path_of(work_dir))
                stream.note(f"run {spec.job_id} in warm container {member.container.id[:12]}")
                remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
                try:
                    if not cancel.watch(member.container.stop):
                        raise _Cancelled
                    result = member.container.run(
                        work_dir, contract.SCRIPT_FILE, environment, remaining, capture
                    )
                except InfrastructureError as error:
                    if cancel.requested:  # the container was killed under the script, as asked
                        raise _Cancelled from error
                    if not isinstance(error, ContainerGone):
                        raise
                    stream.note(f"{error}; trying another")
                    continue
                finally:
                    cancel.watch(None)
                if cancel.requested:
                    raise _Cancelled  # killed as it ended: it is not reused, nothing is read
                healthy = result.reason not in (EndReason.TIMEOUT, EndReason.OOM)
                if not (healthy and member.container.settle()):
                    # Something the request started may still run: the container goes now,
                    # before a single output is read, and never takes another request.
                    healthy = False
                    member.container.remove()
                if not _wrote_outputs(work_dir):
                    return result, []  # the text answers: no copy to make
                answer.scratch = self.answers / spec.job_id
                answer.scratch.mkdir(mode=0o700)
                files = contract.collect_outputs(
                    work_dir, answer.scratch / contract.OUTPUT_DIR, stream.note
                )
                return result, files
            finally:
                shutil.rmtree(built, ignore_errors=True)
                self._put_away(work_dir, settled=healthy)
                self._release(pool, member, healthy)
        raise InfrastructureError(
            f"{_ATTEMPTS_ON_DEAD_CONTAINERS} warm containers in a row died before the script "
            "started"
        )

    @staticmethod
    def _build(built: Path, work_dir: Path, spec: JobSpec, staged: Path) -> None:
        """Build the request's directory where no container reaches, then move it into the
        container's sight with one rename (the body is linked, so that it stays available for
        another container should this one be dead)."""
        try:
            contract.build_work_dir(built, spec, staged, link_body=True)
            os.rename(built, work_dir)
        except OSError as error:
            raise StagingError(f"cannot prepare the work directory {work_dir}: {error}") from error

    def _put_away(self, work_dir: Path, *, settled: bool) -> None:
        """Take the request's directory out of its container's sight before the container takes
        another request: with one rename once nothing of the request runs (`settled`), deleted
        afterwards off the request's path; else deleted at once."""
        if settled:
            spent = self.spent / work_dir.name
            try:
                os.rename(work_dir, spent)
                self._deleter.submit(shutil.rmtree, spent, ignore_errors=True)
                return
            except FileNotFoundError:
                return  # never moved in
            except (OSError, RuntimeError):  # RuntimeError: the runner stopped meanwhile
                shutil.rmtree(spent, ignore_errors=True)
        shutil.rmtree(work_dir, ignore_errors=True)

    @staticmethod
    def _release(pool: ServicePool, member: Member, healthy: bool) -> None:
        try:
            pool.release(member, healthy)
        except Exception:
            log.exception("cannot release warm container %s", member.container.id[:12])

    def _upkeep(self) -> None:
        """Record the requests that run long as running, stop those whose jobs were deleted
        through another server, and renew their leases; delete answers a lost client never
        took."""
        with self._running_lock:
            running = [call.record for call in self._running.values()]
        for record in running:
            if record.age() >= RECORD_RUNNING_AFTER_SECONDS:
                record.running()
        self.delete_calls(
            self.engine.ledger.deleted([record.view.id for record in running if record.recorded])
        )
        if time.monotonic() - self._last_renewal < self.engine.ledger.lease.total_seconds() / 3:
            return
        self._last_renewal = time.monotonic()
        self.engine.ledger.renew_leases([record.view.id for record in running])
        cutoff = time.time() - ABANDONED_ANSWER_SECONDS
        for entry in self.answers.iterdir():
            try:
                if entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry, ignore_errors=True)
            except FileNotFoundError:
                pass


class _RunRecord:
    """The job of one request in the ledger. A request that ends within
    `RECORD_RUNNING_AFTER_SECONDS` is recorded at its end, job, log and outcome in one
    transaction (`Ledger.record_run`: one commit per call, not two); a longer one is recorded as
    running first (by the pools' upkeep, or when its log must be stored), so that it is listed
    and leased while it runs. Once `forget`, it writes nothing more: its job is being deleted."""

    def __init__(self, ledger: Ledger, new: NewJob) -> None:
        self._ledger = ledger
        self._new = new
        self._lock = threading.Lock()
        self.recorded = False
        """Listed in the ledger (so the ledger tells whether it was deleted meanwhile)."""
        self.forgotten = False
        self._started = time.monotonic()
        self.view = ledger.running_view(new, utcnow())

    def age(self) -> float:
        return time.monotonic() - self._started

    def running(self) -> None:
        """Record the job as running, if it is not recorded yet."""
        with self._lock:
            if not (self.recorded or self.forgotten):
                self._ledger.start_running(self._new, at=self.view.created_at)
                self.recorded = True

    def forget(self) -> bool:
        """Write nothing more (a write on its way ends first, and the deletion removes it);
        `False` if forgotten already."""
        with self._lock:
            first, self.forgotten = not self.forgotten, True
            return first

    def log(self, store: Callable[[str, Sequence[LogLine]], None]) -> LineSink:
        """The log stream's sink: lines stored while the request runs need its job."""

        def sink(lines: Sequence[LogLine]) -> None:
            self.running()
            if not self.forgotten:
                store(self.view.id, lines)

        return sink

    def finish(self, outcome: AttemptOutcome, log_lines: Sequence[LogLine]) -> None:
        with self._lock:
            if self.forgotten:
                return
            if self.recorded:
                self._ledger.finish(self.view.id, 1, outcome, log_lines=log_lines)
            else:
                self._ledger.record_run(self._new, self.view.created_at, outcome, log_lines)
                self.recorded = True


@dataclass(frozen=True)
class _Call:
    """A call that runs: its service, its job, and what stops it."""

    service: str
    record: _RunRecord
    cancel: Cancel


def _wrote_outputs(work_dir: Path) -> bool:
    """Whether the script's output directory holds anything (read without following a link;
    when it cannot be read, `collect_outputs` says why)."""
    try:
        descriptor = open_beneath(work_dir, contract.OUTPUT_DIR)
    except OSError:
        return True
    try:
        return bool(os.listdir(descriptor))
    finally:
        os.close(descriptor)


def _tail(text: str, lines: int) -> str:
    return "".join(text.splitlines(keepends=True)[-lines:])


def iterate_answer(answer: Answer, *, binary: bool) -> Iterator[bytes]:
    """The answer's body: base64 (or raw bytes with `binary`) of the file, else the text; the
    service's secrets masked in either."""
    if answer.file is None:
        yield from body.masked([answer.text], answer.secrets)
        return
    chunks = body.raw_chunks(answer.file)
    if len(answer.files) == 1:  # a zip's members are masked already
        chunks = body.masked(chunks, answer.secrets)
    yield from chunks if binary else body.base64_encoded(chunks)


def _secrets(service: Service) -> tuple[bytes, ...]:
    """What `/run` answers mask for `service`: what its job log masks, unless it opts out."""
    if not service.mask_secrets:
        return ()
    return tuple(
        value.encode() for value in service.secret_values() if len(value) >= MIN_SECRET_LENGTH
    )
