"""Limits the supervisor enforces while a script runs: what it writes and what it prints.

Neither Docker nor a plain process can cap a directory's size portably (that needs XFS project
quotas or a filesystem per job), so the supervisor measures: every tick it adds up the job's
work directory and the container's writable layer, and kills the execution once what the script
added reaches `Limits.disk_bytes`. The runtime also caps every single file at that size
(RLIMIT_FSIZE), so that one `dd` cannot write gigabytes between two ticks. Printed output is
counted as it streams; past `Limits.output_bytes` the execution is killed (the kept log is cut
much earlier, at the job log limit, by the ledger).
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from oscarpy.engine.errors import InfrastructureError
from oscarpy.engine.runtimes.base import EndReason, Limits, OutputSink, RunResult

log = logging.getLogger(__name__)

_BLOCK = 512
"""The unit of `st_blocks`, whatever the filesystem's block size."""
DISK_CHECK_SHARE = 0.1
"""Most of its time a job's disk check may take: a tree that takes 50 ms to measure is
measured every 0.5 s, a small one on every tick."""


def disk_usage(roots: Iterable[Path]) -> int:
    """Bytes the files under `roots` take.

    A file counts the larger of its size and its allocated blocks: a sparse file at the size an
    upload would send, a file still in the page cache at what it reserved. Each inode counts
    once (hard links), links are never followed, and entries that vanish or cannot be read
    while the script runs count nothing.
    """
    seen: set[tuple[int, int]] = set()
    total = 0
    pending = list(roots)
    while pending:
        path = pending.pop()
        try:
            info = os.lstat(path)
        except OSError:
            continue
        if (info.st_dev, info.st_ino) in seen:
            continue
        seen.add((info.st_dev, info.st_ino))
        total += max(info.st_size, info.st_blocks * _BLOCK)
        if stat.S_ISDIR(info.st_mode):
            try:
                with os.scandir(path) as entries:
                    pending.extend(Path(entry.path) for entry in entries)
            except OSError:
                continue
    return total


def readable_size(count: int) -> str:
    """A byte count as people read limits: `64 MiB`, `1.5 GiB`, `1000 bytes`."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:.4g} {unit}"
    return f"{count} bytes"


class Guard:
    """Watches one execution against its `Limits`; the first limit reached kills it.

    `check` runs on the supervisor's ticker, the wrapper from `counting` on the output reader;
    `verdict` turns the execution's own result into the limit's, once it has ended.
    """

    def __init__(
        self,
        kill: Callable[[], None],
        limits: Limits,
        roots: Iterable[Path],
        staged_bytes: int = 0,
    ) -> None:
        self._kill = kill
        self._limits = limits
        self._roots = list(roots)
        self._staged = staged_bytes
        self._lock = threading.Lock()
        self._tripped: RunResult | None = None
        self._killed = False
        self._next_check = 0.0
        self.written = 0
        """What the script had added to disk at the last check (bytes)."""
        self.printed = 0

    @property
    def tripped(self) -> RunResult | None:
        return self._tripped

    def counting(self, sink: OutputSink) -> OutputSink:
        """`sink`, counting what passes; past the output limit nothing more passes."""
        limit = self._limits.output_bytes

        def count(chunk: bytes) -> None:
            self.printed += len(chunk)
            if limit is None or self.printed <= limit:
                sink(chunk)
                return
            if self._tripped is None:
                room = len(chunk) - (self.printed - limit)
                sink(chunk[: max(room, 0)])
            # The kill itself is left to `check`, on the ticker: this thread must go on
            # draining the output, or dockerd, which waits for the output to be read before it
            # lets a killed container exit, would never answer the kill.
            self._trip(
                EndReason.LOG_FLOOD,
                f"killed: printed more than {readable_size(limit)} of log "
                "(OSCAR_JOB_LOG_FLOOD_LIMIT)",
            )

        return count

    def check(self, *, force: bool = False) -> None:
        """On each tick: measure what the script wrote (at most as often as
        `DISK_CHECK_SHARE` allows), and kill it once a limit is reached."""
        limit = self._limits.disk_bytes
        started = time.monotonic()
        if limit is not None and (force or started >= self._next_check):
            self.written = max(0, disk_usage(self._roots) - self._staged)
            self._next_check = started + (time.monotonic() - started) / DISK_CHECK_SHARE
            if self.written >= limit:
                self._trip(
                    EndReason.DISK,
                    f"killed: wrote {readable_size(self.written)} to disk; the disk limit is "
                    f"{readable_size(limit)} (OSCAR_JOB_DISK_LIMIT)",
                )
        if self._tripped is not None:
            self._kill_once()  # tried again on the next tick if it failed

    def verdict(self, result: RunResult) -> RunResult:
        """The execution's result, or the limit's if one was reached (checked once more now:
        the script may have ended between two ticks)."""
        if self._tripped is None:
            self.check(force=True)
        if self._tripped is None:
            return result
        return replace(self._tripped, exit_code=result.exit_code)

    def _trip(self, reason: EndReason, message: str) -> None:
        with self._lock:
            if self._tripped is None:
                self._tripped = RunResult(None, reason, message)

    def _kill_once(self) -> None:
        with self._lock:
            if self._killed:
                return
            self._killed = True
        try:
            self._kill()
        except InfrastructureError as error:
            log.warning("cannot kill an execution over its limit (tried again): %s", error)
            with self._lock:
                self._killed = False
