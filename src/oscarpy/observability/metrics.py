"""The Prometheus metrics of one platform, in a private registry (never the global one).

Two kinds live here. Counters and histograms of things that happen (an attempt ends, an S3 or
`/run` request is answered) are updated by small hooks the edges and the engine call; each hook
costs a few microseconds and does no I/O. Gauges of things that *are* (jobs by state, warm
containers, bucket sizes, free disk) are read by collectors at scrape time, so they are right
even after a restart: see `oscarpy.observability.collectors`.

Label values stay bounded: services and buckets are names an admin created, S3 operations come
from a fixed table, status codes and failure reasons from the code. No object key or job id is
ever a label.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable
from itertools import accumulate

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from oscarpy.engine.outcomes import FinishedAttempt
from oscarpy.engine.records import JobSource

# No `*_created` series: Prometheus' text format has no use for them, and they would double
# the series of every labelled counter and histogram. (A process-wide switch of the client.)
disable_created_metrics()  # type: ignore[no-untyped-call]

#: Job waits and runs: from a fast script in a warm container to a long batch job.
JOB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600)
#: Request latencies: small S3 requests take a millisecond, large transfers seconds.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60)


class PlatformMetrics:
    """Every metric `/metrics` exposes; see the module docstring."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.jobs_finished = Counter(
            "oscar_jobs_finished",
            "Jobs that reached a final status in this process, by service and status.",
            ["service", "status"],
            registry=r,
        )
        self.attempts = Counter(
            "oscar_job_attempts",
            "Attempts that ended, by service, outcome and failure reason (none on success).",
            ["service", "outcome", "reason"],
            registry=r,
        )
        self.queue_wait = Histogram(
            "oscar_job_queue_wait_seconds",
            "Time a job waited between being ready and starting an attempt (asynchronous jobs).",
            ["service"],
            buckets=JOB_BUCKETS,
            registry=r,
        )
        self.run_time = Histogram(
            "oscar_job_run_seconds",
            "Time one attempt of a job ran, by service and kind (async or sync).",
            ["service", "kind"],
            buckets=JOB_BUCKETS,
            registry=r,
        )
        self.run_requests = Histogram(
            "oscar_run_request_duration_seconds",
            "Latency of POST /run/{service} as the client saw it, by service and status code.",
            ["service", "code"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.s3 = S3Stats(REQUEST_BUCKETS)
        r.register(self.s3)

    def add_collector(self, collector: Collector) -> None:
        self.registry.register(collector)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)

    # -- hooks ----------------------------------------------------------------------------

    def attempt_finished(self, attempt: FinishedAttempt) -> None:
        service = attempt.service
        self.attempts.labels(service, attempt.outcome, attempt.reason or "none").inc()
        sync = attempt.source == JobSource.RUN
        if not sync:
            self.queue_wait.labels(service).observe(attempt.wait_seconds)
        self.run_time.labels(service, "sync" if sync else "async").observe(attempt.run_seconds)
        if attempt.status in ("succeeded", "failed"):
            self.jobs_finished.labels(service, attempt.status).inc()

    def run_answered(self, service: str, code: int, seconds: float) -> None:
        self.run_requests.labels(service, str(code)).observe(seconds)

    def s3_answered(
        self, operation: str, code: int, seconds: float, received: int, sent: int
    ) -> None:
        self.s3.observe(operation, code, seconds, received, sent)


class S3Stats(Collector):
    """S3 requests by operation and status: counts, latency buckets and bytes.

    Updated by the S3 middleware, which runs on the server's one event loop: plain integers
    with no lock, about a microsecond a request, where prometheus_client's locked counters and
    histogram cost ten times that for the five values a request changes. A scrape copies the
    tables (atomically, under the GIL) and writes them as `oscar_s3_requests_total`,
    `oscar_s3_request_duration_seconds`, `oscar_s3_received_bytes_total` and
    `oscar_s3_sent_bytes_total`.
    """

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        #: (operation, code) -> per-bucket counts (the last one above every bound), then the sum
        self._latency: dict[tuple[str, int], list[float]] = {}
        self._received: dict[str, int] = {}
        self._sent: dict[str, int] = {}

    def observe(self, operation: str, code: int, seconds: float, received: int, sent: int) -> None:
        counts = self._latency.get((operation, code))
        if counts is None:
            counts = self._latency[(operation, code)] = [0] * (len(self.bounds) + 2)
        counts[bisect_left(self.bounds, seconds)] += 1
        counts[-1] += seconds
        if received:
            self._received[operation] = self._received.get(operation, 0) + received
        if sent:
            self._sent[operation] = self._sent.get(operation, 0) + sent

    def describe(self) -> Iterable[Metric]:
        return self._families({}, {}, {})

    def collect(self) -> Iterable[Metric]:
        latency = {key: list(counts) for key, counts in list(self._latency.items())}
        return self._families(latency, dict(self._received), dict(self._sent))

    def _families(
        self,
        latency: dict[tuple[str, int], list[float]],
        received: dict[str, int],
        sent: dict[str, int],
    ) -> list[Metric]:
        requests = CounterMetricFamily(
            "oscar_s3_requests",
            "S3 requests answered, by operation and status code.",
            labels=["operation", "code"],
        )
        by_operation: dict[str, list[float]] = {}
        for (operation, code), counts in sorted(latency.items()):
            requests.add_metric([operation, str(code)], sum(counts[:-1]))
            total = by_operation.setdefault(operation, [0] * len(counts))
            for index, value in enumerate(counts):
                total[index] += value
        durations = HistogramMetricFamily(
            "oscar_s3_request_duration_seconds",
            "Latency of S3 requests until the last byte of the answer, by operation.",
            labels=["operation"],
        )
        for operation, counts in sorted(by_operation.items()):
            cumulative = list(accumulate(counts[:-1]))
            buckets = [
                ("+Inf" if math.isinf(bound) else repr(float(bound)), count)
                for bound, count in zip((*self.bounds, math.inf), cumulative, strict=True)
            ]
            durations.add_metric([operation], buckets, counts[-1])
        families: list[Metric] = [requests, durations]
        for name, what, table in (
            ("oscar_s3_received_bytes", "Request body bytes the S3 front-end received", received),
            ("oscar_s3_sent_bytes", "Response body bytes the S3 front-end sent", sent),
        ):
            family = CounterMetricFamily(name, f"{what}, by operation.", labels=["operation"])
            for operation, number in sorted(table.items()):
                family.add_metric([operation], number)
            families.append(family)
        return families
