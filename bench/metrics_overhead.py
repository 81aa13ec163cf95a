"""What the metrics cost: the S3 small-PUT and `/run` benchmarks against two servers in the
same run, one with metrics on (the default) and one with `OSCAR_METRICS=false`.

Both servers run side by side and are driven in turns, round after round, so that the load of
a shared machine weighs on both alike; each ratio is the median of the per-round ratios (on /
off; 1.00 means no cost, 0.98 a 2 % loss of throughput). Server CPU per request is read from
/proc, which the machine's load disturbs less than wall time. The in-process cost of the hooks
themselves is timed last.

    .venv/bin/python -m bench.metrics_overhead [--rounds 30] [--small-count 200]
                                               [--run-rounds 6] [--requests 50]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.server import RunningServer, start_server

from bench.run_latency import create_service, percentile, run_call
from bench.s3_throughput import SECRET_KEY, Target, cpu_seconds, put_small, timed

MODES = {"on": {}, "off": {"OSCAR_METRICS": "false"}}


def start(root: Path, mode: str) -> RunningServer:
    env = {"OSCAR_PASSWORD": SECRET_KEY, "OSCAR_LOG_LEVEL": "WARNING", **MODES[mode]}
    return start_server(root / mode, env=env)


def small_puts(
    servers: dict[str, RunningServer], rounds: int, count: int
) -> dict[str, dict[str, list[float]]]:
    """Objects/s and server CPU ms per PUT of `count` 1 KiB PUTs from 8 threads, per round."""
    clients = {
        mode: Target(mode, server.s3_url, server.process.pid, "oscar", SECRET_KEY).client()
        for mode, server in servers.items()
    }
    for s3 in clients.values():
        s3.create_bucket(Bucket="bench")
        put_small(s3, 100, -1)()  # warm-up
    figures: dict[str, dict[str, list[float]]] = {m: {"rate": [], "cpu": []} for m in servers}
    for number in range(rounds):
        order = list(servers) if number % 2 == 0 else list(reversed(servers))
        for mode in order:
            pid = servers[mode].process.pid
            before = cpu_seconds(pid)
            seconds = timed(put_small(clients[mode], count, number))
            figures[mode]["rate"].append(count / seconds)
            figures[mode]["cpu"].append((cpu_seconds(pid) - before) * 1000 / count)
    for s3 in clients.values():
        s3.close()
    return figures


def runs(
    servers: dict[str, RunningServer], rounds: int, requests: int
) -> dict[str, dict[str, list[float]]]:
    """Per round: p50 latency of `requests` sequential `/run` calls, and server CPU ms each."""
    calls: dict[str, Callable[[], None]] = {}
    for mode, server in servers.items():
        create_service(server, "bench-one", 1)
        calls[mode] = run_call(server, "bench-one")
        for _ in range(10):
            calls[mode]()
    figures: dict[str, dict[str, list[float]]] = {m: {"p50": [], "cpu": []} for m in servers}
    for number in range(rounds):
        order = list(servers) if number % 2 == 0 else list(reversed(servers))
        samples: dict[str, list[float]] = {mode: [] for mode in servers}
        cpu: dict[str, float] = dict.fromkeys(servers, 0.0)
        for _ in range(requests):
            for mode in order:
                pid = servers[mode].process.pid
                before = cpu_seconds(pid)
                started = time.perf_counter()
                calls[mode]()
                samples[mode].append(time.perf_counter() - started)
                cpu[mode] += cpu_seconds(pid) - before
        for mode in servers:
            figures[mode]["p50"].append(percentile(samples[mode], 0.5) * 1000)
            figures[mode]["cpu"].append(cpu[mode] * 1000 / requests)
    return figures


def paired(on: list[float], off: list[float], higher_is_better: bool) -> float:
    """Median of the per-round ratios, as throughput on / off (below 1 is a cost)."""
    ratios = [(a / b) if higher_is_better else (b / a) for a, b in zip(on, off, strict=True)]
    return statistics.median(ratios)


def microseconds(call: Callable[[], object]) -> float:
    """Per call, the best of 7 repeats: the least the machine's other load added."""
    loops = 20_000
    return min(timeit.repeat(call, number=loops, repeat=7)) / loops * 1e6


def hook_cost() -> dict[str, float]:
    """Microseconds the S3 and `/run` hooks take per request, in this process."""
    from oscarpy.observability.metrics import PlatformMetrics

    metrics = PlatformMetrics()
    return {
        "s3": microseconds(lambda: metrics.s3_answered("PutObject", 200, 0.001, 1024, 0)),
        "run": microseconds(lambda: metrics.run_answered("bench-one", 200, 0.05)),
    }


def operation_cost() -> float:
    """Microseconds to name the S3 operation of a PUT, as the middleware does per request."""
    from oscarpy.s3.app import S3App
    from oscarpy.s3.metrics import operation_name

    app = S3App.__new__(S3App)
    app.domains = {"localhost"}
    scope: dict[str, Any] = {
        "method": "PUT",
        "path": "/bench/small/1/00001",
        "raw_path": b"/bench/small/1/00001",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:9000"), (b"content-length", b"1024")],
    }
    return microseconds(lambda: operation_name(app, scope))


def middleware_cost() -> float:
    """Microseconds the whole S3 middleware adds to a 1 KiB PUT (naming, timing, the wrapped
    receive and send, the tables), against the same app unwrapped, on one event loop."""
    import asyncio

    from oscarpy.observability.metrics import PlatformMetrics
    from oscarpy.s3.app import S3App
    from oscarpy.s3.metrics import S3Metrics

    class Answering(S3App):
        """The front-end's addressing with a handler that only reads the body and answers."""

        def __init__(self) -> None:
            self.domains = {"localhost"}

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            while (await receive()).get("more_body"):
                pass
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    bare = Answering()
    wrapped = S3Metrics(bare, PlatformMetrics())
    scope = {
        "type": "http",
        "method": "PUT",
        "path": "/bench/small/1/00001",
        "raw_path": b"/bench/small/1/00001",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:9000"), (b"content-length", b"1024")],
    }
    body = {"type": "http.request", "body": b"x" * 1024, "more_body": False}

    async def receive() -> dict[str, Any]:
        return body

    async def send(message: dict[str, Any]) -> None:
        pass

    async def requests(app: Any, count: int) -> None:
        for _ in range(count):
            await app(scope, receive, send)

    def per_request(app: Any) -> float:
        count = 20_000
        best = math.inf
        for _ in range(7):
            started = time.perf_counter()
            asyncio.run(requests(app, count))
            best = min(best, time.perf_counter() - started)
        return best / count * 1e6

    return per_request(wrapped) - per_request(bare)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="rounds of small PUTs")
    parser.add_argument("--small-count", type=int, default=200, help="PUTs per round")
    parser.add_argument("--run-rounds", type=int, default=6, help="rounds of /run requests")
    parser.add_argument("--requests", type=int, default=50, help="/run requests per round")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as temporary:
        root = Path(temporary)
        servers = {mode: start(root, mode) for mode in MODES}
        try:
            with servers["off"].client() as client:
                assert client.get("/metrics").status_code == 404, "metrics are not off"
            s3 = small_puts(servers, options.rounds, options.small_count)
            run = runs(servers, options.run_rounds, options.requests)
        finally:
            for server in servers.values():
                server.stop()
    hooks = hook_cost()
    naming = operation_cost()
    middleware = middleware_cost()
    print(
        f"medians of {options.rounds} S3 and {options.run_rounds} /run rounds; "
        "ratio = metrics on / off, the median of per-round ratios (below 1 is a cost)\n"
    )
    print("| benchmark | metrics on | metrics off | ratio |")
    print("|---|---|---|---|")
    rows = [
        (f"S3 PUT {options.small_count} × 1 KiB, 8 threads", s3, "rate", "objects/s", True),
        ("S3 small PUT, server CPU per PUT", s3, "cpu", "ms", False),
        (f"/run p50 latency, {options.requests} sequential", run, "p50", "ms", False),
        ("/run, server CPU per request", run, "cpu", "ms", False),
    ]
    for label, figures, key, unit, higher in rows:
        on, off = figures["on"][key], figures["off"][key]
        ratio = paired(on, off, higher)
        print(
            f"| {label} | {statistics.median(on):,.2f} {unit} | "
            f"{statistics.median(off):,.2f} {unit} | {ratio:.3f} |"
        )
    print(
        f"\nhooks in process: S3 request {hooks['s3'] + naming:.1f} µs "
        f"(operation name {naming:.1f} µs, counters {hooks['s3']:.1f} µs); "
        f"/run request {hooks['run']:.1f} µs; the whole S3 middleware adds {middleware:.1f} µs "
        "to a 1 KiB PUT"
    )


if __name__ == "__main__":
    main()
