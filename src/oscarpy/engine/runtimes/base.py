"""What the supervisor needs from a way of running a script: the `Runtime` protocol.

A runtime starts one execution of `/bin/sh <script>` for one job attempt, streams what it
prints, enforces the time limit and reports how it ended. `docker` (one fresh container per
job) is the default; `process` runs the script on the host. Cluster backends come later behind
the same protocol.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Literal, Protocol, runtime_checkable

OutputSink = Callable[[bytes], None]
"""Receives what the script prints (stdout and stderr interleaved), as it is produced."""

DEFAULT_PIDS_LIMIT = 1024


@dataclass(frozen=True)
class Limits:
    """Resources one execution may use; `None` means no limit."""

    cpu_cores: float | None = None
    memory_bytes: int | None = None
    pids: int = DEFAULT_PIDS_LIMIT
    disk_bytes: int | None = None
    """What the script may write: the runtime caps every file at this size (RLIMIT_FSIZE), and
    the supervisor kills the execution once its files add up to it (`engine.limits`)."""
    output_bytes: int | None = None
    """What the script may print before the supervisor kills it (a log flood)."""
    gpu: bool = False
    """The host's GPUs are given to the container."""


PullPolicy = Literal["Always", "IfNotPresent", "Never"]


@dataclass(frozen=True)
class ImagePull:
    """How a service's image is got: its `image_pull_policy` (`None`: by the tag, as OSCAR) and
    the registry login of its `image_pull_secrets`."""

    policy: PullPolicy | None = None
    username: str = ""
    password: str = field(default="", repr=False)


@dataclass(frozen=True)
class RunSpec:
    """One attempt of one job, ready to start: the work directory is staged already."""

    job_id: str
    service: str
    attempt: int
    image: str
    work_dir: Path
    """On this host; the runtime makes it visible to the script at `Runtime.work_path`."""
    script: str
    """File name of the script inside `work_dir`."""
    environment: dict[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    user: str | None = None
    """Who the script runs as (`uid:gid`); `None`: the image's user."""
    network: str = "default"
    """`default` (the engine's default network) or `none` (no network at all)."""
    constraints: tuple[str, ...] = ()
    """Swarm placement constraints (`node.labels.gpu==true`): which nodes may run it. Local
    runtimes run everything on this machine."""
    pull: ImagePull | None = None
    """How the image is got where the script runs; local runtimes got it in `prepare`."""
    cancelled: threading.Event | None = field(default=None, compare=False, repr=False)
    """Set once the job is cancelled (deleted): a runtime whose `start` may wait (for a warm
    container to free up) stops waiting and raises `Cancelled`."""


class EndReason(StrEnum):
    """Why an execution ended; `None` in `RunResult.reason` means the script succeeded."""

    EXIT = "exit"
    """The script exited with a non-zero code."""
    SIGNAL = "signal"
    TIMEOUT = "timeout"
    OOM = "oom"
    DISK = "disk"
    """Its files reached `Limits.disk_bytes`."""
    LOG_FLOOD = "log_flood"
    """It printed more than `Limits.output_bytes`."""


@dataclass(frozen=True)
class RunResult:
    exit_code: int | None
    reason: EndReason | None
    message: str

    @property
    def succeeded(self) -> bool:
        return self.reason is None


def result_from_exit(exit_code: int, *, oom: bool = False) -> RunResult:
    """Name the outcome from the exit status as a shell reports it (128 + n for signal n)."""
    if oom:
        return RunResult(exit_code, EndReason.OOM, "killed: out of memory (memory limit reached)")
    if exit_code == 0:
        return RunResult(0, None, "script exited with 0")
    if exit_code < 0:
        return RunResult(exit_code, EndReason.SIGNAL, f"killed by signal {-exit_code}")
    if exit_code > 128 and exit_code - 128 in (6, 9, 15):
        return RunResult(exit_code, EndReason.SIGNAL, f"killed by signal {exit_code - 128}")
    return RunResult(exit_code, EndReason.EXIT, f"script exited with {exit_code}")


def timed_out(timeout: float, exit_code: int | None = None) -> RunResult:
    return RunResult(exit_code, EndReason.TIMEOUT, f"killed after the timeout of {timeout:g} s")


class Execution(Protocol):
    """A started (or adopted) execution of a job's script."""

    @property
    def id(self) -> str:
        """The runtime's own name for it (a container id), recorded on the attempt."""
        ...

    def wait(
        self, timeout: float | None, on_output: OutputSink, *, follow_from: float | None = None
    ) -> RunResult:
        """Stream the output until the script ends; kill it once `timeout` seconds have passed.

        `follow_from` (a Unix time) skips output printed before it, for an adopted execution
        whose earlier output is already in the job log.
        """
        ...

    def kill(self) -> None: ...

    def writable_layer(self) -> Path | None:
        """Where, on this host, the script's writes outside the work directory land (a
        container's own filesystem layer), if this host can read it; watched for the disk limit."""
        ...

    def remove(self) -> None:
        """Delete every trace of the execution (the container); idempotent."""
        ...


@runtime_checkable
class PlacedExecution(Protocol):
    """An execution that may run on another machine than this one (a Swarm task)."""

    node: str | None
    """The machine it runs on, once known (after the cluster has placed it)."""


LOCAL_NODE = socket.gethostname()
"""Where the executions of a local runtime (`docker`, `process`) run."""


def node_of(execution: Execution) -> str | None:
    """The machine that runs `execution`: this one, unless the runtime placed it elsewhere."""
    return execution.node if isinstance(execution, PlacedExecution) else LOCAL_NODE


@runtime_checkable
class KeepsContainers(Protocol):
    """A runtime that keeps containers of its own between jobs (the Docker runtime's network
    holders): those a dead server process left are removed when the engine cleans up after it,
    and a changed or deleted service's when the engine hears of the change."""

    def remove_left_by(self, owner: str) -> None: ...

    def forget_service(self, service: str) -> None: ...


class Runtime(Protocol):
    """How scripts run; the supervisor sees nothing else of the container engine."""

    name: str

    def work_path(self, work_dir: Path) -> PurePosixPath:
        """Where the script sees the job's work directory."""
        ...

    def prepare(self, image: str, pull: ImagePull | None = None) -> None:
        """Make `image` available as `pull` says; raises `ImageUnavailable`."""
        ...

    def start(self, spec: RunSpec) -> Execution: ...

    def find(self, job_id: str, attempt: int) -> Execution | None:
        """The execution of that attempt left by an earlier server process, to adopt it."""
        ...

    def remove_job(self, job_id: str) -> None:
        """Kill and delete every execution of the job (the job is being deleted)."""
        ...

    def job_ids(self) -> set[str]:
        """Jobs of this installation that still have an execution (running or exited)."""
        ...

    def close(self) -> None: ...
