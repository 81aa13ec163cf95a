"""Brute-force protection for every place that checks the admin's password: HTTP Basic on the
REST API, the dashboard's sign-in form and S3 signatures.

Failures are counted per client address and per user name. After `free_failures` of either,
the next attempt waits `base_delay` seconds, doubling with each further failure up to
`max_delay`; an attempt made before then is refused *without checking the password*, so that
guessing in parallel gains nothing. A success clears both counts. Each failure is logged once,
with the client's address, at WARNING.

The counts are rows of the state DB (`signin_failures`), so that every server process on it
throttles the same guesser and a restart forgets nothing. A failure costs one write. A success
costs one primary-key read, and a write only when it clears a count; once a read found neither
the address nor the user counted, further successes of that pair in this process skip the read
for `_CLEAR_SECONDS` (a failure of either here ends that at once). So a wait that another
process starts reaches a pair that has just signed in here within that second; a guess sent
here in that second is checked, and if wrong it is counted and ends the skipping. A count idle
for an hour (and not holding a wait) is forgotten, swept by the next failure's write.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Float, Integer, String, bindparam, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from oscarpy.config import Settings
from oscarpy.db import Base, Database

log = logging.getLogger("oscarpy.auth")

#: A count idle this long, and holding no wait, is forgotten.
_FORGET_SECONDS = 3600.0
#: How long successes of a pair found uncounted skip the read (see the module docstring).
_CLEAR_SECONDS = 1.0
_CLEAR_PAIRS = 10_000
#: Attempts of one process that share an address or a user run one at a time (see `attempt`);
#: the keys are spread over this many locks, so that other callers do not wait on them.
_LOCK_STRIPES = 64


class SigninFailure(Base):
    __tablename__ = "signin_failures"

    key: Mapped[str] = mapped_column(String(320), primary_key=True)
    """`address <ip>` or `user <name>`."""
    failures: Mapped[int] = mapped_column(Integer)
    blocked_until: Mapped[float] = mapped_column(Float)
    """Seconds since the epoch before which every attempt is refused unchecked (0: none)."""
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    """When the row is forgotten: an hour after its last failure, or at the end of its wait."""


#: The read every sign-in makes, built once (building a statement costs more than running it).
_COUNTED = select(SigninFailure.key, SigninFailure.blocked_until).where(
    or_(SigninFailure.key == bindparam("address"), SigninFailure.key == bindparam("user"))
)


class Throttle:
    """Failed sign-ins by address and by user, and how long each must wait."""

    def __init__(
        self,
        database: Database,
        *,
        free_failures: int = 5,
        base_delay: float = 1.0,
        max_delay: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.database = database
        # Wall-clock time: the waits are shared with the other processes on the state DB.
        self.clock = clock
        self.free_failures = free_failures
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._locks = [threading.Lock() for _ in range(_LOCK_STRIPES)]
        self._clear_until: dict[tuple[str, str], float] = {}
        self._clear_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, database: Database) -> Throttle:
        return cls(
            database,
            free_failures=settings.signin_free_failures,
            base_delay=settings.signin_delay,
            max_delay=settings.signin_max_delay,
        )

    def attempt(self, address: str, user: str, where: str, check: Callable[[], bool]) -> bool:
        """Run `check` (the password or signature comparison) for a sign-in from `address` as
        `user`, counting a False as a failure (logged once); raises `Throttled` instead while
        either must wait. In this process the wait, the check and the count are one step
        under the keys' locks, so that parallel guesses cannot all pass the wait before the
        first failure counts; across processes, a failure counts only if no wait began
        meanwhile (else it is refused as throttled). An exception from `check` (a malformed
        request) passes through uncounted."""
        keys = _keys(address, user)
        with self._locked(keys):
            now = self.clock()
            recently_clear = self._clear_until.get(keys, 0.0) > now
            counted = {} if recently_clear else self._counted(keys)
            until = max((blocked for blocked in counted.values()), default=0.0)
            if until > now:
                raise Throttled(until - now)
            if check():
                if counted:
                    self._clear(keys)
                if not recently_clear:
                    self._remember_clear(keys, now)
                return True
            self._forget_clear(keys)
            self._count_failure(keys, now)
        log.warning("sign-in failed (%s) for user %r from %s", where, user[:64], address)
        return False

    def _remember_clear(self, keys: tuple[str, str], now: float) -> None:
        with self._clear_lock:
            if len(self._clear_until) >= _CLEAR_PAIRS:
                self._clear_until.clear()
            self._clear_until[keys] = now + _CLEAR_SECONDS

    def _forget_clear(self, keys: tuple[str, str]) -> None:
        """Every pair that shares the address or the user reads again."""
        with self._clear_lock:
            for pair in [pair for pair in self._clear_until if set(pair) & set(keys)]:
                del self._clear_until[pair]

    def _locked(self, keys: tuple[str, str]) -> _Locks:
        stripes = sorted({hash(key) % _LOCK_STRIPES for key in keys})
        return _Locks([self._locks[stripe] for stripe in stripes])

    def _counted(self, keys: tuple[str, str]) -> dict[str, float]:
        """The keys that have a row, with the end of their wait. Every sign-in pays this
        read: a bare connection, not an ORM session (several times cheaper on SQLite)."""
        address, user = keys
        with self.database.engine.connect() as connection:
            rows = connection.execute(_COUNTED, {"address": address, "user": user})
            return {str(row.key): float(row.blocked_until) for row in rows}

    def _clear(self, keys: tuple[str, str]) -> None:
        with self.database.writing() as session:
            session.execute(delete(SigninFailure).where(SigninFailure.key.in_(keys)))

    def _count_failure(self, keys: tuple[str, str], now: float) -> None:
        """One write: sweep forgotten rows, add one failure to each key, and start a wait where
        the count is past the free ones; `Throttled` (nothing counted) if another process
        started a wait since the check began."""
        insert = postgres_insert if self.database.dialect == "postgresql" else sqlite_insert
        with self.database.writing() as session:
            session.execute(delete(SigninFailure).where(SigninFailure.expires_at < now))
            proposed = insert(SigninFailure).values(
                [
                    {"key": key, "failures": 1, "blocked_until": 0.0, "expires_at": now}
                    for key in keys
                ]
            )
            counts = session.execute(
                proposed.on_conflict_do_update(
                    index_elements=[SigninFailure.key],
                    set_={"failures": SigninFailure.failures + 1},
                    where=SigninFailure.blocked_until <= now,
                ).returning(SigninFailure.key, SigninFailure.failures)
            ).all()
            if len(counts) < len(keys):
                raise Throttled(self._longest_wait(session, keys) - now)
            for key, failures in counts:
                self._start_wait(session, key, failures, now)

    def _start_wait(self, session: Session, key: str, failures: int, now: float) -> None:
        over = failures - self.free_failures
        until = 0.0
        if over >= 0:
            until = now + min(self.max_delay, self.base_delay * 2.0 ** min(over, 32))
        session.execute(
            update(SigninFailure)
            .where(SigninFailure.key == key)
            .values(blocked_until=until, expires_at=max(until, now + _FORGET_SECONDS))
        )

    @staticmethod
    def _longest_wait(session: Session, keys: tuple[str, str]) -> float:
        waits = session.scalars(
            select(SigninFailure.blocked_until).where(SigninFailure.key.in_(keys))
        )
        return max(waits, default=0.0)


class _Locks:
    """Holds several locks, taken in a fixed order (no deadlock between two attempts)."""

    def __init__(self, locks: list[threading.Lock]) -> None:
        self.locks = locks

    def __enter__(self) -> None:
        for lock in self.locks:
            lock.acquire()

    def __exit__(self, *_: object) -> None:
        for lock in reversed(self.locks):
            lock.release()


def client_address(scope: Mapping[str, Any]) -> str:
    """The peer's address of an ASGI connection (a proxy's, behind one)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _keys(address: str, user: str) -> tuple[str, str]:
    return (f"address {address[:64]}", f"user {user[:256]}")


class Throttled(Exception):
    """An attempt made before its wait is over; `retry_after` says how long is left."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after:.0f} s")
        self.retry_after = retry_after

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after)))
