"""Runs one job attempt: stage in, run the script through a runtime, stage out, clean up.

The supervisor is runtime-agnostic and runs outside the user's container: any image with
`/bin/sh` works. It reaches storage only through `StorageProvider`s and reports the attempt's
progress only through a `JobReporter`, so that it can run on another host than the API.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from oscarpy.engine import contract
from oscarpy.engine.errors import Cancelled, InfrastructureError, StagingError
from oscarpy.engine.limits import Guard
from oscarpy.engine.logstream import LogLine, LogStream
from oscarpy.engine.outcomes import AttemptOutcome, OutcomeKind
from oscarpy.engine.runtimes.base import (
    EndReason,
    Execution,
    RunResult,
    RunSpec,
    Runtime,
    node_of,
)
from oscarpy.engine.safefs import set_mode
from oscarpy.engine.spec import JobSpec, StorageTarget
from oscarpy.storage.providers.base import StorageError, StorageProvider

log = logging.getLogger(__name__)

_TICK_SECONDS = 0.1
"""How often a running job's disk use is checked (if cheap enough, `limits.DISK_CHECK_SHARE`)
and its log flushed (if due, every 0.5 s)."""
RECORD_AFTER_SECONDS = 1.0
"""An execution still running after this long is reported `started` (its attempt then shows
its container and node while it runs); a shorter one is reported with its end, in the same
write. Recovery finds a dead server's executions by their labels (`Runtime.find`), not by this
record, so a crash before it loses nothing."""


class JobReporter(Protocol):
    """The only way the supervisor tells the platform what happens to a job."""

    def started(
        self, job_id: str, attempt: int, execution_id: str, node: str | None = None
    ) -> None:
        """The execution has run `RECORD_AFTER_SECONDS` and still runs; `node` is the machine
        it runs on, when already known."""
        ...

    def placed(self, job_id: str, attempt: int, node: str) -> None:
        """The machine that runs the attempt is known (at once, or once a cluster placed it)."""
        ...

    def log(self, job_id: str, lines: Sequence[LogLine]) -> None: ...

    def finished(
        self,
        job_id: str,
        attempt: int,
        outcome: AttemptOutcome,
        lines: Sequence[LogLine] = (),
        started: StartedExecution | None = None,
    ) -> None:
        """The attempt ended; `lines` are its log's last lines, not sent through `log`, and
        `started` its execution when it was not reported through `started`."""
        ...


@dataclass(frozen=True)
class StartedExecution:
    """An attempt's execution, and the machine it runs on when known."""

    execution_id: str
    node: str | None


ProviderLookup = Callable[[str], StorageProvider]
"""Resolves a provider name of the service (`minio.default`, `s3.aws`) to a provider."""


class Supervisor:
    def __init__(self, runtime: Runtime, reporter: JobReporter, work_root: Path) -> None:
        self.runtime = runtime
        self.reporter = reporter
        self.work_root = work_root
        #: Executions whose removal failed (the engine was unreachable, or a container did not
        #: die in time): retried by `retry_removals`, so none is left until the next restart.
        self._unremoved: list[Execution] = []
        self._unremoved_lock = threading.Lock()

    def work_dir(self, job_id: str, attempt: int) -> Path:
        """One per attempt: a retry may start while the previous attempt is still cleaned up."""
        return self.work_root / f"{job_id}.{attempt}"

    def outputs_dir(self, job_id: str, attempt: int) -> Path:
        """Where an attempt's outputs are copied to before upload: never mounted in a container."""
        return self.work_root / f"{job_id}.{attempt}.out"

    def discard(self, job_id: str, attempt: int) -> None:
        """Remove what an attempt that never ends here left on disk (a dead server's attempt
        that is not adopted: the job runs again under a new attempt number)."""
        self._clean_up(None, self.work_dir(job_id, attempt), self.outputs_dir(job_id, attempt))

    def run(
        self,
        spec: JobSpec,
        providers: ProviderLookup,
        *,
        adopt: Execution | None = None,
        attempt_started: float | None = None,
        follow_from: float | None = None,
        cancelled: threading.Event | None = None,
        runtime: Runtime | None = None,
    ) -> AttemptOutcome:
        """Run the attempt to its end and report the outcome; never raises for a job's failure.

        With `adopt`, the execution was started by an earlier server process at
        `attempt_started` (Unix time): staging in is skipped, its output is followed from
        `follow_from` (what the log already holds is not repeated) and the timeout counts
        from its start. `runtime` runs this attempt instead of the supervisor's own (a
        service's warm containers).
        """
        runtime = runtime or self.runtime
        cancelled = cancelled or threading.Event()
        stream = LogStream(lambda lines: self.reporter.log(spec.job_id, lines))
        work_dir = self.work_dir(spec.job_id, spec.attempt)
        execution: Execution | None = adopt
        placement = _Placement(spec, self.reporter)
        ticker = _Ticker(stream.flush_if_due, lambda: placement.check(execution))
        try:
            if execution is None:
                stream.note(f"attempt {spec.attempt} of job {spec.job_id} ({runtime.name})")
                self._stage_in(spec, work_dir, providers)
                staged = contract.staged_bytes(work_dir)
                runtime.prepare(spec.image, spec.pull)
                if cancelled.is_set():
                    raise Cancelled
                execution = runtime.start(self._run_spec(spec, work_dir, runtime, cancelled))
                placement.started(execution)
                if cancelled.is_set():  # asked while the container was being created
                    execution.kill()
            else:
                staged = contract.staged_bytes(work_dir)
                placement.started(execution)
                stream.note(f"adopted execution {execution.id[:12]} after a restart")
            layer = execution.writable_layer()
            guard = Guard(
                execution.kill,
                spec.limits,
                [work_dir] if layer is None else [work_dir, layer],
                staged,
            )
            ticker.start(guard.check, _kill_once_cancelled(cancelled, execution.kill))
            result = execution.wait(
                self._remaining(spec, attempt_started if adopt else None),
                guard.counting(stream.feed),
                follow_from=follow_from if adopt else None,
            )
            ticker.stop()
            result = guard.verdict(result)
            stream.end_output()
            if cancelled.is_set():
                outcome = AttemptOutcome(OutcomeKind.SCRIPT_FAILED, "cancelled", "cancelled")
            else:
                outcome = self._conclude(spec, work_dir, result, stream, providers)
        except Cancelled:
            outcome = AttemptOutcome(OutcomeKind.SCRIPT_FAILED, "cancelled", "cancelled")
        except InfrastructureError as error:
            ticker.stop()
            stream.end_output()
            outcome = AttemptOutcome(
                OutcomeKind.INFRASTRUCTURE_FAILED, str(error), error.reason, None
            )
        except Exception as error:  # a bug must fail the attempt, not kill the worker thread
            ticker.stop()
            log.exception("job %s: unexpected error", spec.job_id)
            outcome = AttemptOutcome(
                OutcomeKind.INFRASTRUCTURE_FAILED, f"internal error: {error!r}", "internal"
            )
        stream.note(outcome.message)
        placement.check(execution)
        # Recorded before the clean-up: a crash in between leaves litter (swept at start), not a
        # finished job that would run again. The log's last lines, and the execution of a short
        # attempt, go in the same write.
        self.reporter.finished(
            spec.job_id, spec.attempt, outcome, stream.take(), placement.unrecorded()
        )
        self._clean_up(execution, work_dir, self.outputs_dir(spec.job_id, spec.attempt))
        return outcome

    @staticmethod
    def _remaining(spec: JobSpec, started_at: float | None) -> float | None:
        if spec.timeout is None:
            return None
        if started_at is None:
            return spec.timeout
        return max(0.0, spec.timeout - (time.time() - started_at))

    def _conclude(
        self,
        spec: JobSpec,
        work_dir: Path,
        result: RunResult,
        stream: LogStream,
        providers: ProviderLookup,
    ) -> AttemptOutcome:
        if not result.succeeded:
            if result.reason is not EndReason.OOM:
                stream.note(f"{result.message}; outputs are not uploaded")
            return contract.outcome_of(result)
        uploaded = self._stage_out(spec, work_dir, stream, providers)
        return contract.outcome_of(result, f"{uploaded} output file(s) uploaded")

    # -- staging --------------------------------------------------------------------------

    def _stage_in(self, spec: JobSpec, work_dir: Path, providers: ProviderLookup) -> None:
        for leftover in (work_dir, self.outputs_dir(spec.job_id, spec.attempt)):
            shutil.rmtree(leftover, ignore_errors=True)  # left by an interrupted attempt
        try:
            input_path = contract.build_work_dir(
                work_dir, spec, spec.body_path if spec.input is None else None
            )
            if spec.input is not None and spec.stage_in:
                provider = providers(spec.input.provider)
                provider.download(spec.input.bucket, spec.input.key, input_path)
                set_mode(input_path, contract.READABLE)
            if spec.mount is not None:
                self._stage_mount(spec.mount, work_dir, providers(spec.mount.provider))
        except StorageError as error:
            raise StagingError(f"cannot stage the input in: {error}") from error
        except OSError as error:
            raise StagingError(f"cannot prepare the work directory {work_dir}: {error}") from error

    @staticmethod
    def _stage_mount(mount: StorageTarget, work_dir: Path, provider: StorageProvider) -> None:
        """OSCAR's `mount`: every object under the folder, as files under `mnt/<bucket>/`."""
        prefix = f"{mount.folder}/" if mount.folder else ""
        folder = contract.mounted_file(work_dir, mount.bucket, f"{prefix}_") or work_dir
        _readable_dirs(folder.parent, work_dir)  # there, even when the folder is empty
        for found in provider.list_objects(mount.bucket, prefix):
            destination = contract.mounted_file(work_dir, mount.bucket, found.key)
            if destination is None:
                continue
            _readable_dirs(destination.parent, work_dir)
            provider.download(mount.bucket, found.key, destination)
            set_mode(destination, contract.READABLE)

    @staticmethod
    def _run_spec(
        spec: JobSpec, work_dir: Path, runtime: Runtime, cancelled: threading.Event
    ) -> RunSpec:
        environment = contract.environment(spec, runtime.work_path(work_dir))
        return RunSpec(
            job_id=spec.job_id,
            service=spec.service,
            attempt=spec.attempt,
            image=spec.image,
            work_dir=work_dir,
            script=contract.SCRIPT_FILE,
            environment=environment,
            limits=spec.limits,
            user=spec.user,
            network=spec.network,
            constraints=spec.constraints,
            pull=spec.pull,
            cancelled=cancelled,
        )

    def _stage_out(
        self, spec: JobSpec, work_dir: Path, stream: LogStream, providers: ProviderLookup
    ) -> int:
        # The execution has ended: nothing of the script can change the outputs any more, and
        # the copy is out of its reach.
        output_dir = self.outputs_dir(spec.job_id, spec.attempt)
        uploaded = 0
        try:
            files = contract.collect_outputs(work_dir, output_dir, stream.note)
        except OSError as error:
            raise StagingError(f"cannot take the outputs: {error}") from error
        if not files:
            stream.note("the script wrote no files to TMP_OUTPUT_DIR; nothing to upload")
        for relative in files:
            targets = [target for target in spec.outputs if target.matches(relative)]
            if not targets:
                stream.note(f"output {relative} matches no output path; not uploaded")
            for target in targets:
                key = target.key_for(relative)
                try:
                    provider = providers(target.provider)
                    provider.upload(target.bucket, key, output_dir / relative)
                except StorageError as error:
                    raise StagingError(
                        f"cannot upload output {relative} to {target.bucket}/{key}: {error}"
                    ) from error
                stream.note(f"uploaded {relative} to {target.provider} {target.bucket}/{key}")
                uploaded += 1
        return uploaded

    def _clean_up(self, execution: Execution | None, *directories: Path) -> None:
        try:
            if execution is not None:
                execution.remove()
        except InfrastructureError as error:
            log.warning(
                "could not remove execution %s (retried later): %s",
                execution and execution.id,
                error,
            )
            if execution is not None:
                with self._unremoved_lock:
                    self._unremoved.append(execution)
        for directory in directories:
            shutil.rmtree(directory, ignore_errors=True)

    def retry_removals(self) -> int:
        """Try again to remove the executions whose removal failed; returns how many remain."""
        with self._unremoved_lock:
            pending, self._unremoved = self._unremoved, []
        remaining = []
        for execution in pending:
            try:
                execution.remove()
            except InfrastructureError:
                remaining.append(execution)
        with self._unremoved_lock:
            self._unremoved.extend(remaining)
            return len(self._unremoved)


class _Placement:
    """Reports an attempt's execution and the node it runs on: the execution once it has run
    `RECORD_AFTER_SECONDS` (checked by the ticker), else with the attempt's end; the node at
    once for a local runtime, after Swarm placed the task (seen while it runs) for the swarm
    runtime. The ticker and the worker thread both call it, hence the lock."""

    def __init__(self, spec: JobSpec, reporter: JobReporter) -> None:
        self._spec = spec
        self._reporter = reporter
        self._lock = threading.Lock()
        self._execution: Execution | None = None
        self._since = 0.0
        self._recorded = False
        self._node: str | None = None

    def started(self, execution: Execution) -> None:
        with self._lock:
            self._execution = execution
            self._since = time.monotonic()
            self._node = node_of(execution)

    def check(self, execution: Execution | None) -> None:
        node = node_of(execution) if execution is not None else None
        with self._lock:
            if self._execution is None:
                return
            moved = bool(node) and node != self._node
            if moved:
                self._node = node
            if not self._recorded:
                if time.monotonic() - self._since >= RECORD_AFTER_SECONDS:
                    self._recorded = True
                    self._reporter.started(
                        self._spec.job_id, self._spec.attempt, self._execution.id, self._node
                    )
            elif moved and node:
                self._reporter.placed(self._spec.job_id, self._spec.attempt, node)

    def unrecorded(self) -> StartedExecution | None:
        """The execution, if not reported yet (it now goes with the attempt's end)."""
        with self._lock:
            if self._execution is None or self._recorded:
                return None
            self._recorded = True
            return StartedExecution(self._execution.id, self._node)


def _kill_once_cancelled(
    cancelled: threading.Event, kill: Callable[[], None]
) -> Callable[[], None]:
    """A ticker task that kills the execution once its job is cancelled (deleted): the
    runtimes that cannot find an execution by its job (warm containers) stop it only this way."""
    killed = False

    def check() -> None:
        nonlocal killed
        if cancelled.is_set() and not killed:
            killed = True
            kill()

    return check


class _Ticker:
    """Runs small periodic tasks while the script runs: flushing the log stream while the script
    is silent (so a running job's log stays fresh) and checking the disk limit."""

    def __init__(self, *tasks: Callable[[], None]) -> None:
        self._tasks = list(tasks)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-ticker", daemon=True)

    def start(self, *more: Callable[[], None]) -> None:
        self._tasks.extend(more)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(_TICK_SECONDS):
            for task in self._tasks:
                try:
                    task()
                except Exception:  # one failing task must not stop the others
                    log.exception("job ticker task %r failed", task)


def _readable_dirs(path: Path, root: Path) -> None:
    """`path` and its missing parents below `root`, listable by the script's user whatever the
    server's (private) umask."""
    for directory in [*reversed(path.parents), path]:
        if directory.is_relative_to(root) and directory != root and not directory.exists():
            os.mkdir(directory)
            set_mode(directory, 0o755)
