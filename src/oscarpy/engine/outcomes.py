"""How one attempt of a job ended, as the supervisor reports it and the ledger records it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from oscarpy.engine.runtimes.base import EndReason


class OutcomeKind(StrEnum):
    SUCCEEDED = "succeeded"
    SCRIPT_FAILED = "script_failed"
    """The script's own doing: non-zero exit, killed by a signal, or over its timeout."""
    INFRASTRUCTURE_FAILED = "infrastructure_failed"
    """The platform's: daemon errors, missing image, staging, OOM kill. Retried with backoff."""


LIMIT_REASONS = frozenset({EndReason.DISK.value, EndReason.LOG_FLOOD.value})
"""A script killed for these ends its job, even if the service asks for `retries`: run again, it
would write or print just as much."""


@dataclass(frozen=True)
class AttemptOutcome:
    kind: OutcomeKind
    message: str
    reason: str | None = None
    """`exit`, `signal`, `timeout`, `oom`, `disk`, `log_flood`, `image`, `staging`, `runtime`,
    `container`, `abandoned`… ; `None` on success."""
    exit_code: int | None = None

    @classmethod
    def success(cls, message: str = "script exited with 0") -> AttemptOutcome:
        return cls(OutcomeKind.SUCCEEDED, message, None, 0)


@dataclass(frozen=True)
class FinishedAttempt:
    """One attempt of a job that ended, as the ledger recorded it."""

    job_id: str
    service: str
    source: str
    attempt: int
    outcome: str
    reason: str | None
    status: str
    """The job's status after this attempt: `succeeded`, `failed`, or `pending` to run again."""
    ready_at: datetime
    """When the job became ready to run this attempt (created, or its retry was due)."""
    started_at: datetime
    finished_at: datetime

    @property
    def wait_seconds(self) -> float:
        return max((self.started_at - self.ready_at).total_seconds(), 0.0)

    @property
    def run_seconds(self) -> float:
        return max((self.finished_at - self.started_at).total_seconds(), 0.0)
