"""Shared pieces of the S3 compatibility tests: a real `oscar serve` and clients pointed at
it. (No tests here; the other `test_s3_*` modules import from it.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.support.server import RunningServer, start_server

_clients: list[Any] = []


@pytest.fixture(scope="module")
def s3_server(wire_server: RunningServer) -> Iterator[RunningServer]:
    """The session's shared server; each module's clients are closed after it."""
    yield wire_server
    _close_clients()


@pytest.fixture(scope="module")
def own_s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server of the module's own, for tests that measure the process (its peak memory)."""
    running = start_server(tmp_path_factory.mktemp("s3") / "data")
    yield running
    _close_clients()
    running.stop()


def _close_clients() -> None:
    while _clients:
        _clients.pop().close()  # their pooled sockets, before the warnings check sees them


def client(server: RunningServer, *, secret: str | None = None, **config: Any) -> Any:
    """A boto3 S3 client with the installed version's defaults, unless `config` overrides."""
    created = boto3.client(
        "s3",
        endpoint_url=server.s3_url,
        aws_access_key_id=server.username,
        aws_secret_access_key=secret or server.password,
        region_name="us-east-1",
        config=Config(**config) if config else None,
    )
    _clients.append(created)
    return created


def error_code(raised: pytest.ExceptionInfo[Any]) -> tuple[str, int]:
    response = raised.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]
