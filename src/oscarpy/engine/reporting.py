"""The supervisor's `JobReporter`: what happens to a job becomes a ledger write."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from oscarpy.engine.ledger import Ledger, Successor
from oscarpy.engine.logstream import LogLine
from oscarpy.engine.outcomes import AttemptOutcome, OutcomeKind
from oscarpy.engine.supervisor import StartedExecution

log = logging.getLogger(__name__)


class LedgerReporter:
    def __init__(self, ledger: Ledger, script_retries: Callable[[str], int]) -> None:
        """`script_retries` gives a service's `retries` setting by service name."""
        self.ledger = ledger
        self._script_retries = script_retries
        self.successor: Callable[[str], Successor | None] = lambda _job_id: None
        """What may run the next job of an ending job's service in its place (the
        dispatcher's `successor`), claimed in the same transaction as the end."""

    def started(
        self, job_id: str, attempt: int, execution_id: str, node: str | None = None
    ) -> None:
        self.ledger.record_execution(job_id, attempt, execution_id, node)

    def placed(self, job_id: str, attempt: int, node: str) -> None:
        self.ledger.record_node(job_id, attempt, node)

    def log(self, job_id: str, lines: Sequence[LogLine]) -> None:
        try:
            self.ledger.append_log(job_id, lines)
        except Exception:  # a lost log batch must not fail the job that printed it
            log.exception("job %s: cannot store %d log line(s)", job_id, len(lines))

    def finished(
        self,
        job_id: str,
        attempt: int,
        outcome: AttemptOutcome,
        lines: Sequence[LogLine] = (),
        started: StartedExecution | None = None,
    ) -> None:
        retries = 0
        if outcome.kind is OutcomeKind.SCRIPT_FAILED:
            retries = self._script_retries(self.ledger.get(job_id).service)
        status = self.ledger.finish(
            job_id,
            attempt,
            outcome,
            script_retries=retries,
            log_lines=lines,
            execution_id=started.execution_id if started else None,
            node=started.node if started else None,
            successor=self.successor(job_id),
        )
        if status is not None:
            log.info("job %s: %s (%s)", job_id, status.oscar_name, outcome.message)
