"""How one attempt of a job ended, as the supervisor reports it and the ledger records it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class OutcomeKind(StrEnum):
    SUCCEEDED = "succeeded"
    SCRIPT_FAILED = "script_failed"
    """The script's own doing: non-zero exit, killed by a signal, or over its timeout."""
    INFRASTRUCTURE_FAILED = "infrastructure_failed"
    """The platform's: daemon errors, missing image, staging, OOM kill. Retried with backoff."""


@dataclass(frozen=True)
class AttemptOutcome:
    kind: OutcomeKind
    message: str
    reason: str | None = None
    """`exit`, `signal`, `timeout`, `oom`, `image`, `staging`, `runtime`, `container`,
    `abandoned`… ; `None` on success."""
    exit_code: int | None = None

    @classmethod
    def success(cls, message: str = "script exited with 0") -> AttemptOutcome:
        return cls(OutcomeKind.SUCCEEDED, message, None, 0)
