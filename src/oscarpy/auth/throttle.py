"""Brute-force protection for every place that checks the admin's password: HTTP Basic on the
REST API, the dashboard's sign-in form and S3 signatures.

Failures are counted per client address and per user name. After `free_failures` of either,
the next attempt waits `base_delay` seconds, doubling with each further failure up to
`max_delay`; an attempt made before then is refused *without checking the password*, so that
guessing in parallel gains nothing. A success clears both counts. Each failure is logged once,
with the client's address, at WARNING.

The counts live in this process: several processes each throttle on their own (a guesser gains
at most a factor of the number of processes).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from oscarpy.config import Settings

log = logging.getLogger("oscarpy.auth")

#: Counts idle this long are forgotten (and the table pruned when it grows).
_FORGET_SECONDS = 3600
_PRUNE_ABOVE = 10_000


@dataclass
class _Failures:
    count: int = 0
    blocked_until: float = 0.0
    last: float = 0.0


class Throttle:
    """Failed sign-ins by address and by user, and how long each must wait."""

    def __init__(
        self,
        *,
        free_failures: int = 5,
        base_delay: float = 1.0,
        max_delay: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.free_failures = free_failures
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._failures: dict[str, _Failures] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Throttle:
        return cls(
            free_failures=settings.signin_free_failures,
            base_delay=settings.signin_delay,
            max_delay=settings.signin_max_delay,
        )

    def attempt(self, address: str, user: str, where: str, check: Callable[[], bool]) -> bool:
        """Run `check` (the password or signature comparison) for a sign-in from `address` as
        `user`, counting a False as a failure (logged once); raises `Throttled` instead while
        either must wait. The wait, the check and the count are one step under the lock, so
        that parallel guesses cannot all pass the wait before the first failure counts. An
        exception from `check` (a malformed request) passes through uncounted."""
        with self._lock:
            now = self.clock()
            entries = [self._failures.get(key) for key in _keys(address, user)]
            until = max((entry.blocked_until for entry in entries if entry), default=0.0)
            if until > now:
                raise Throttled(until - now)
            if check():
                for key in _keys(address, user) if any(entries) else ():
                    self._failures.pop(key, None)
                return True
            self._count_failure(address, user, now)
        log.warning("sign-in failed (%s) for user %r from %s", where, user[:64], address)
        return False

    def _count_failure(self, address: str, user: str, now: float) -> None:
        if len(self._failures) > _PRUNE_ABOVE:
            self._prune(now)
        for key in _keys(address, user):
            entry = self._failures.setdefault(key, _Failures())
            entry.count += 1
            entry.last = now
            over = entry.count - self.free_failures
            if over >= 0:
                delay = min(self.max_delay, self.base_delay * 2.0 ** min(over, 32))
                entry.blocked_until = now + delay

    def _prune(self, now: float) -> None:
        self._failures = {
            key: entry
            for key, entry in self._failures.items()
            if now - entry.last < _FORGET_SECONDS or entry.blocked_until > now
        }


def client_address(scope: Mapping[str, Any]) -> str:
    """The peer's address of an ASGI connection (a proxy's, behind one)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _keys(address: str, user: str) -> tuple[str, str]:
    return (f"address {address}", f"user {user[:256]}")


class Throttled(Exception):
    """An attempt made before its wait is over; `retry_after` says how long is left."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after:.0f} s")
        self.retry_after = retry_after

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after)))
