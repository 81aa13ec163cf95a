"""What an unauthenticated caller puts in an S3 path reaches the server log (DEBUG): it must
arrive escaped, so that `%0A` cannot forge a log line nor `%1B` drive the reader's terminal."""

from __future__ import annotations

import time

import httpx

from tests.support.server import RunningServer

FORGED = "2026-12-01 12:00:00 INFO oscarpy.server admin signed in from 10.0.0.1"


def test_an_unsigned_s3_path_cannot_forge_a_log_line(process_server: RunningServer) -> None:
    path = "/bucket/key%0A" + FORGED.replace(" ", "%20") + "%0D%1B%5B31mred"
    answer = httpx.get(process_server.s3_url + path, timeout=10)
    # Anonymous and refused: an unknown bucket answers NoSuchBucket, as S3 does.
    assert answer.status_code == 404 and b"NoSuchBucket" in answer.content
    time.sleep(0.5)
    log = process_server.log()
    assert "admin signed in from 10.0.0.1" in log  # logged, escaped, not dropped
    assert not any(line.startswith(FORGED) for line in log.splitlines())
    assert "\x1b[31m" not in log and "\r" not in log
