"""Turns a script's raw output into timestamped, secret-free log lines, sent in batches.

Output arrives in arbitrary chunks; lines are cut at newlines (or at `MAX_LINE` bytes for
output that has none), stamped when they arrive, masked with `oscarpy.log.redact`, and handed
to the sink at most every `interval` seconds or `batch_bytes` bytes, so that a chatty script
costs a few DB writes per second, not one per line.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from oscarpy.db import utcnow
from oscarpy.log import redact

LogLine = tuple[datetime, str]
LineSink = Callable[[Sequence[LogLine]], None]

MAX_LINE = 64 * 1024


class LogStream:
    def __init__(
        self, sink: LineSink, *, interval: float = 0.5, batch_bytes: int = 256 * 1024
    ) -> None:
        self._sink = sink
        self._interval = interval
        self._batch_bytes = batch_bytes
        self._partial = b""
        self._pending: list[LogLine] = []
        self._pending_bytes = 0
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()

    def feed(self, chunk: bytes) -> None:
        with self._lock:
            data = self._partial + chunk
            *lines, self._partial = data.split(b"\n")
            while len(self._partial) > MAX_LINE:
                lines.append(self._partial[:MAX_LINE])
                self._partial = self._partial[MAX_LINE:]
            now = utcnow()
            for line in lines:
                self._add(now, line.decode("utf-8", errors="replace"))
        self.flush_if_due()

    def note(self, text: str) -> None:
        """A line from the platform itself, marked so that it is not mistaken for the script's."""
        with self._lock:
            self._add(utcnow(), f"[oscar] {text}")
        self.flush_if_due()

    def _add(self, at: datetime, text: str) -> None:
        text = redact(text.rstrip("\r"))
        self._pending.append((at, text))
        self._pending_bytes += len(text) + 28

    def flush_if_due(self) -> None:
        due = (
            self._pending_bytes >= self._batch_bytes
            or time.monotonic() - self._last_flush >= self._interval
        )
        if due:
            self.flush()

    def end_output(self) -> None:
        """The output has ended: its last line, even without a newline, is complete."""
        with self._lock:
            self._end_output()

    def _end_output(self) -> None:
        if self._partial:
            self._add(utcnow(), self._partial.decode("utf-8", errors="replace"))
            self._partial = b""

    def take(self) -> list[LogLine]:
        """Every line not sent yet, for the caller to store with the job's end in one write."""
        with self._lock:
            self._end_output()
            return self._take()

    def _take(self) -> list[LogLine]:
        batch, self._pending, self._pending_bytes = self._pending, [], 0
        self._last_flush = time.monotonic()
        return batch

    def flush(self, final: bool = False) -> None:
        with self._lock:
            if final:
                self._end_output()
            batch = self._take()
            if batch:
                self._sink(batch)
