"""A Kubernetes quantity with a huge exponent (`memory: "1e999999"`) once cost half a minute of
CPU on the event loop at every registry read, stalling both the REST and the S3 port, and
`1e1000000` answered 500. Quantities are bounded (length, exponent) before any arithmetic and
refused with 400, at once."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.server import RunningServer

pytestmark = pytest.mark.serial  # an answer within 2 s: measured alone


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("memory", "1e999999"),
        ("memory", "1e1000000"),
        ("memory", "1e-999999Ki"),
        ("cpu", "1e999999"),
        ("cpu", "1e1000000"),
        ("memory", "1" * 100_000),
    ],
)
def test_a_huge_quantity_is_refused_at_once(
    process_server: RunningServer, field: str, value: str
) -> None:
    definition = {"name": "huge", "image": "unused", "script": "true", field: value}
    started = time.monotonic()
    with httpx.Client(base_url=process_server.url, auth=process_server.auth, timeout=10) as client:
        created = client.post("/system/services", json=definition)
        elapsed = time.monotonic() - started
        assert created.status_code == 400, created.text
        assert field in created.text
        assert elapsed < 2, f"took {elapsed:.1f} s"
        assert client.get("/system/services/huge").status_code == 404
        assert client.get("/system/services").status_code == 200
