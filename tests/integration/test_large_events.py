"""`EVENT` for large `/job` bodies, against a real `oscar serve` and real containers: the
variable holds the body up to the kernel's limit for one variable (128 KiB), and the event
file holds it at any size."""

from __future__ import annotations

import json
import time

import pytest

from tests.support.cli import TEST_IMAGE
from tests.support.server import RunningServer

pytestmark = pytest.mark.docker


def _log_line(server: RunningServer, service: str, body: bytes) -> str:
    with server.client() as client:
        job = client.post(f"/job/{service}", content=body).json()["job_id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = client.get(f"/system/logs/{service}/{job}").text
            if "env=" in text:
                return next(line for line in text.splitlines() if "env=" in line)
            time.sleep(0.2)
    raise AssertionError("the job did not run")


@pytest.mark.parametrize(
    ("size", "in_environment"),
    [(100 * 1024, True), (200 * 1024, False)],
    ids=["100KiB-in-EVENT", "200KiB-in-the-file-only"],
)
def test_a_large_body_reaches_the_script(
    server: RunningServer, size: int, in_environment: bool
) -> None:
    name = f"large-event-{size // 1024}"
    server.create_service(
        {
            "name": name,
            "image": TEST_IMAGE,
            "script": 'echo "env=${#EVENT} file=$(wc -c < "$EVENT_FILE_PATH")"',
        }
    )
    body = json.dumps({"data": "x" * (size - 12)}).encode()
    line = _log_line(server, name, body)
    expected_env = len(body) if in_environment else 0
    assert line.endswith(f"env={expected_env} file={len(body)}"), line
