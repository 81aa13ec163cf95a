"""The `process` runtime: the script runs directly on the host, as the server's user.

For machines without a container engine and for development only: there is no image, no
isolation and no memory or CPU limit, so `oscar serve --runtime process` warns at start. A
script still gets the job contract's environment and its own process group, which is killed
at the timeout, and the disk limit caps each file it writes. Executions cannot be adopted after a
restart; their jobs are re-run.
"""

from __future__ import annotations

import functools
import os
import resource
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from oscarpy.engine.errors import ContainerError
from oscarpy.engine.runtimes.base import (
    ImagePull,
    OutputSink,
    RunResult,
    RunSpec,
    result_from_exit,
    timed_out,
)

if TYPE_CHECKING:
    from oscarpy.engine.runtimes.base import Runtime

WARNING = (
    "runtime 'process': job scripts run on this host as this user, without a container, "
    "image or resource limits; use it only for trusted scripts"
)
_READ_SIZE = 65536
_INHERITED = ("PATH", "LANG", "LC_ALL", "TZ", "HOME", "TMPDIR")


def _file_size_cap(disk_bytes: int | None) -> Callable[[], None] | None:
    """Run in the child before `exec`: no file it writes may grow past the disk limit (the one
    limit this runtime can set; `subprocess` restores SIGXFSZ, which Python ignores, so an
    oversized write kills the writer as it would in a container)."""
    if not disk_bytes:
        return None
    return functools.partial(resource.setrlimit, resource.RLIMIT_FSIZE, (disk_bytes, disk_bytes))


class ProcessExecution:
    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process

    @property
    def id(self) -> str:
        return f"pid:{self._process.pid}"

    @property
    def finished(self) -> bool:
        return self._process.poll() is not None

    def wait(
        self, timeout: float | None, on_output: OutputSink, *, follow_from: float | None = None
    ) -> RunResult:
        reader = threading.Thread(target=self._stream, args=(on_output,), daemon=True)
        reader.start()
        try:
            exit_code = self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self._process.wait()
            reader.join(5)
            return timed_out(timeout or 0)
        reader.join(5)
        return result_from_exit(exit_code)

    def _stream(self, on_output: OutputSink) -> None:
        stream = self._process.stdout
        assert stream is not None
        while chunk := os.read(stream.fileno(), _READ_SIZE):
            on_output(chunk)

    def kill(self) -> None:
        try:
            os.killpg(self._process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def writable_layer(self) -> Path | None:
        return None  # a host process writes to the host: only its work directory is watched

    def remove(self) -> None:
        # The whole process group: what the script left in the background goes with it.
        self.kill()
        if self._process.poll() is None:
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


class ProcessRuntime:
    """Runs `/bin/sh <script>` in the work directory on this host."""

    name = "process"

    def __init__(self) -> None:
        self._running: dict[str, ProcessExecution] = {}
        self._lock = threading.Lock()

    def work_path(self, work_dir: Path) -> PurePosixPath:
        return PurePosixPath(work_dir)

    def prepare(self, image: str, pull: ImagePull | None = None) -> None:
        """No images here: the host's own `/bin/sh` and tools run the script."""

    def start(self, spec: RunSpec) -> ProcessExecution:
        environment = {name: os.environ[name] for name in _INHERITED if name in os.environ}
        environment.update(spec.environment)
        try:
            process = subprocess.Popen(
                ["/bin/sh", str(spec.work_dir / spec.script)],
                cwd=spec.work_dir,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_file_size_cap(spec.limits.disk_bytes),
            )
        except OSError as error:
            raise ContainerError(f"cannot start /bin/sh: {error}") from error
        execution = ProcessExecution(process)
        with self._lock:
            finished = [job for job, known in self._running.items() if known.finished]
            for job in finished:
                del self._running[job]
            self._running[spec.job_id] = execution
        return execution

    def find(self, job_id: str, attempt: int) -> ProcessExecution | None:
        return None

    def job_ids(self) -> set[str]:
        return set()

    def remove_job(self, job_id: str) -> None:
        with self._lock:
            execution = self._running.pop(job_id, None)
        if execution is not None:
            execution.remove()

    def close(self) -> None:
        with self._lock:
            running = list(self._running.values())
            self._running.clear()
        for execution in running:
            execution.remove()


if TYPE_CHECKING:

    def _fits_protocol(runtime: ProcessRuntime) -> Runtime:
        return runtime
