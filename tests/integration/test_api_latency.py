"""A request on a kept-alive connection is answered at once, not after a delayed ACK.

Without TCP_NODELAY on accepted sockets, a response written in two parts (headers, then body)
waits for the client's delayed ACK: about 40 ms on Linux for every request.
"""

from __future__ import annotations

import http.client
import statistics
import time
from pathlib import Path

import pytest

from tests.support.server import start_server

pytestmark = pytest.mark.serial  # a latency bound: measured alone


def test_kept_alive_requests_do_not_wait_for_delayed_acks(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", env={"OSCAR_LOG_LEVEL": "WARNING"})
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        durations = []
        for _ in range(30):
            started = time.perf_counter()
            connection.request("GET", "/health")
            answer = connection.getresponse()
            assert answer.read() == b"Ok"
            durations.append(time.perf_counter() - started)
        connection.close()
    finally:
        server.stop()
    # A delayed ACK costs at least 40 ms (a kernel timer); even a loaded 2-core machine answers a
    # health check well under 30 ms.
    assert statistics.median(durations) < 0.03, f"median {statistics.median(durations):.3f} s"
