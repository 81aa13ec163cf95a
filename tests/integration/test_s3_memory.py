"""Memory stays flat: a big object streams through the server a MiB at a time."""

from __future__ import annotations

import os
from pathlib import Path

from tests.integration.test_s3_support import client, own_s3_server  # noqa: F401
from tests.support.server import RunningServer

MiB = 1024 * 1024


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


def test_a_256_mib_object_streams_in_and_out_in_flat_memory(
    own_s3_server: RunningServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    s3 = client(own_s3_server)
    s3.create_bucket(Bucket="memory")
    s3.put_object(Bucket="memory", Key="warm-up", Body=b"x")  # load every code path first
    before = peak_rss_mib(own_s3_server.process.pid)
    source = tmp_path / "big.bin"
    block = os.urandom(MiB)
    with source.open("wb") as handle:
        for _ in range(256):
            handle.write(block)
    with source.open("rb") as handle:  # one single-stream PUT, not multipart
        s3.put_object(Bucket="memory", Key="big.bin", Body=handle)
    body = s3.get_object(Bucket="memory", Key="big.bin")["Body"]
    received = 0
    while chunk := body.read(4 * MiB):
        assert chunk == block * (len(chunk) // MiB) + block[: len(chunk) % MiB]
        received += len(chunk)
    assert received == 256 * MiB
    grown = peak_rss_mib(own_s3_server.process.pid) - before
    assert grown < 64, f"the server's peak memory grew by {grown:.0f} MiB for a 256 MiB object"
