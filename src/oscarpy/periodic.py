"""A daemon thread that does one thing every few seconds until it is stopped.

The instance heartbeat, the retention sweep, the storage watcher and the history writer all
have this shape; what differs is only what one turn does and how it reports its failures, so
that stays with them. Stopping wakes the thread at once instead of waiting out the interval.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Periodic:
    """Calls `turn` every `interval` seconds on a daemon thread named `name`.

    `first`, if given, runs once on the thread before the first interval (work that should not
    wait, nor hold up the caller of `start`). A turn that raises ends the thread: turns catch
    and log what they can survive.
    """

    def __init__(
        self,
        name: str,
        interval: float,
        turn: Callable[[], None],
        *,
        first: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.interval = interval
        self._turn = turn
        self._first = first
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stopping(self) -> bool:
        """True once `stop` or `cancel` was called: a long turn may end early."""
        return self._stopping.is_set()

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        """Let the current turn be the last, without waiting (callable from a turn itself)."""
        self._stopping.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Let the current turn be the last, and wait up to `timeout` seconds for it."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        if self._first is not None:
            self._first()
        while not self._stopping.wait(self.interval):
            self._turn()
