"""Slow clients (slowloris) on both ports: a request whose headers never finish, or whose body
stalls, is closed after its timeout, and one address cannot hold more than its share of
connections that have not yet sent their headers (and so shown no credential). Meanwhile the
server keeps answering everyone else. (The code before still held 200 half-sent requests after
21 s.)"""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.server import RunningServer, start_server

pytestmark = pytest.mark.serial  # timeouts of seconds: measured alone

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 3.0
PER_ADDRESS = 20
HALF_SENT = 60


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    env = {
        "OSCAR_RUNTIME": "process",
        "OSCAR_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        "OSCAR_BODY_TIMEOUT": str(BODY_TIMEOUT),
        "OSCAR_WAITING_CONNECTIONS_PER_ADDRESS": str(PER_ADDRESS),
    }
    running = start_server(tmp_path_factory.mktemp("slow") / "data", env=env)
    yield running
    running.stop()


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed `sock` (EOF or reset) without waiting for more."""
    sock.setblocking(False)
    try:
        return sock.recv(1024) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def _half_sent(port: int, count: int) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        sockets.append(sock)
    return sockets


@pytest.mark.parametrize("port_name", ["port", "s3_port"])
def test_half_sent_requests_are_capped_and_closed(server: RunningServer, port_name: str) -> None:
    port = getattr(server, port_name)
    started = time.monotonic()
    sockets = _half_sent(port, HALF_SENT)
    try:
        time.sleep(0.5)
        closed_at_once = sum(_closed_by_server(sock) for sock in sockets)
        assert closed_at_once >= HALF_SENT - PER_ADDRESS, closed_at_once
        # Everyone else (another address) is still served while they hang.
        other = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(transport=other, timeout=5) as client:
            # REST: /health; S3: an anonymous GET of the bucket "health", which does not exist.
            assert client.get(f"http://127.0.0.1:{port}/health").status_code in (200, 404)
        # Trickling a byte now and then does not extend the header deadline.
        for _ in range(int(HEADER_TIMEOUT * 2)):
            for sock in sockets:
                try:
                    sock.send(b"a")
                except OSError:
                    pass
            time.sleep(0.5)
        deadline = started + HEADER_TIMEOUT + 8
        while time.monotonic() < deadline:
            still_open = [sock for sock in sockets if not _closed_by_server(sock)]
            if not still_open:
                break
            time.sleep(0.2)
        assert still_open == [], f"{len(still_open)} half-sent requests still held"
    finally:
        for sock in sockets:
            sock.close()


def test_a_stalled_body_is_closed_and_a_slow_steady_one_is_not(server: RunningServer) -> None:
    pair = f"{server.username}:{server.password}".encode()
    authorization = "Basic " + base64.b64encode(pair).decode()
    head = (
        f"POST /system/services HTTP/1.1\r\nHost: x\r\nAuthorization: {authorization}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    ).encode()
    stalled = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    steady = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        stalled.sendall(head + b"{")
        steady.sendall(head + b"{")
        started = time.monotonic()
        while time.monotonic() - started < BODY_TIMEOUT + 4:
            steady.send(b" ")  # one byte a second: slow, but never idle for the timeout
            time.sleep(1)
            if _closed_by_server(stalled):
                break
        assert _closed_by_server(stalled)
        assert not _closed_by_server(steady)
    finally:
        stalled.close()
        steady.close()
