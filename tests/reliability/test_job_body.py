"""`POST /job/{service}` bodies are streamed to disk, never held whole in memory, and refused
with 413 past `job_body_limit`: a caller cannot grow the server's memory by the size of what it
sends, nor fill its disk past the limit."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import RunningServer, start_server

LIMIT = 80 * 1024 * 1024
DECODED = 48 * 1024 * 1024  # its base64 is 64 MiB, under the limit


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    data = tmp_path_factory.mktemp("job-body") / "data"
    running = start_server(
        data, env={"OSCAR_RUNTIME": "process", "OSCAR_JOB_BODY_LIMIT": str(LIMIT)}
    )
    running.create_service(
        {"name": "digest", "image": "unused", "script": 'md5sum < "$INPUT_FILE_PATH"\n'}
    )
    yield running
    running.stop()


def _peak_rss(pid: int) -> int:
    """The process's peak resident memory (VmHWM) in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _declared_only(server: RunningServer, length: int) -> bytes:
    """The status line of a request that declares `length` bytes and sends none."""
    credentials = base64.b64encode(f"{server.username}:{server.password}".encode()).decode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            f"POST /job/digest HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {credentials}\r\n"
            f"Content-Length: {length}\r\n\r\n".encode()
        )
        return sock.recv(4096).split(b"\r\n", 1)[0] + b"\r\n"


def _chunks(data: bytes, size: int = 1024 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_a_large_body_is_streamed_not_held_in_memory(server: RunningServer) -> None:
    content = os.urandom(DECODED)
    body = base64.b64encode(content)
    before = _peak_rss(server.process.pid)
    with server.client() as client:
        answer = client.post("/job/digest", content=_chunks(body))
        assert answer.status_code == 201, answer.text
        grown = _peak_rss(server.process.pid) - before
        job_id = answer.json()["job_id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            log = client.get(f"/system/logs/digest/{job_id}").text
            if hashlib.md5(content).hexdigest() in log:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"the job never saw the decoded body: {log!r}")
    # The old code held the body, its decoded copy and more: +150 MiB for this 64 MiB body.
    assert grown < 24 * 1024 * 1024, f"peak RSS grew by {grown / 2**20:.0f} MiB"


def test_a_body_over_the_limit_is_refused_and_leaves_nothing(server: RunningServer) -> None:
    def endless() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
        chunk = b"A" * (1024 * 1024)
        for _ in range(LIMIT // len(chunk) + 8):
            yield chunk

    with server.client() as client:
        jobs_before = client.get("/system/logs/digest").json()["jobs"]
        streamed = client.post("/job/digest", content=endless())
        declared = _declared_only(server, LIMIT + 1)
        jobs_after = client.get("/system/logs/digest").json()["jobs"]
    assert streamed.status_code == 413, streamed.text
    assert "job_body_limit" in streamed.text
    assert declared.startswith(b"HTTP/1.1 413 "), declared
    assert jobs_after == jobs_before
    leftovers = [
        p.name for p in (server.data_dir / "job-bodies").iterdir() if p.name.startswith(".")
    ]
    assert leftovers == []
