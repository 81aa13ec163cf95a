"""When a failed attempt runs again: a small validated policy, kept out of the runner.

Infrastructure failures (the platform's fault) are retried with exponential backoff up to
`limit` times. A script's own failure is re-run only as many times as the service's `retries`
says, without backoff: the script decided, and waiting would not change its mind. A script
stopped for writing or printing too much, and a `/run` request, are never run again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from oscarpy.engine.outcomes import LIMIT_REASONS, AttemptOutcome, OutcomeKind
from oscarpy.engine.records import JobSource


@dataclass(frozen=True)
class Failures:
    """How often a job has failed so far, this attempt included."""

    script: int = 0
    infrastructure: int = 0


@dataclass(frozen=True)
class RetryPolicy:
    limit: int = 3
    """Infrastructure retries after the first attempt; then the job fails."""
    base_seconds: float = 2.0
    """Backoff before the first retry; doubled for each later one."""
    max_seconds: float = 300.0
    jitter: float = 0.1
    """Fraction of random spread, so that jobs failed together do not retry together."""

    def __post_init__(self) -> None:
        if self.limit < 0:
            raise ValueError(f"retry limit must be 0 or more, not {self.limit}")
        if self.base_seconds < 0 or self.max_seconds < self.base_seconds:
            raise ValueError(
                f"backoff needs 0 <= base ({self.base_seconds}) <= max ({self.max_seconds})"
            )
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter is a fraction between 0 and 1, not {self.jitter}")

    def backoff(self, failures: int) -> float:
        """Seconds to wait before the retry that follows the `failures`-th failure (1-based)."""
        delay = min(self.max_seconds, self.base_seconds * 2.0 ** max(0, failures - 1))
        return delay * (1 + random.uniform(-self.jitter, self.jitter))

    def allows(self, failures: int) -> bool:
        """Whether another infrastructure retry follows the `failures`-th failure."""
        return failures <= self.limit

    def next_attempt(
        self,
        source: JobSource,
        outcome: AttemptOutcome,
        failures: Failures,
        script_retries: int = 0,
    ) -> float | None:
        """Seconds until the job's next attempt, or `None` when this outcome ends the job.

        `failures` counts this attempt's failure already; `script_retries` is the service's
        `retries` setting.
        """
        if outcome.kind is OutcomeKind.SUCCEEDED or source is JobSource.RUN:
            return None  # a `/run` client waited for this very attempt: no one awaits another
        if outcome.kind is OutcomeKind.SCRIPT_FAILED:
            if outcome.reason in LIMIT_REASONS:
                return None  # run again, it would write or print just as much
            return 0.0 if failures.script <= script_retries else None
        if self.allows(failures.infrastructure):
            return self.backoff(failures.infrastructure)
        return None
