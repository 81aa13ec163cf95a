"""Fixtures shared by several integration modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.server import RunningServer, start_server


@pytest.fixture(scope="session")
def s3_wire_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One `oscar serve` for the S3 client modules (boto3, aws cli, minio-py): each uses
    buckets of its own, and a start costs seconds."""
    running = start_server(tmp_path_factory.mktemp("s3") / "data")
    yield running
    running.stop()
