"""What a crash (kill -9) leaves: every acknowledged PUT, and nothing of an unfinished one."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from oscarpy.db import Database
from oscarpy.storage.store import ObjectStore
from tests.integration.test_s3_support import client
from tests.support.server import RunningServer, start_server

MiB = 1024 * 1024


def _start_half_upload(server: RunningServer, key: str, size: int) -> socket.socket:
    """Send the signed headers of a PUT and the first MiB of its body, then stop sending."""
    body = b"x" * size
    url = f"{server.s3_url}/durable/{key}"
    request = AWSRequest(method="PUT", url=url, data=body)
    S3SigV4Auth(Credentials(server.username, server.password), "s3", "us-east-1").add_auth(request)
    head = f"PUT /durable/{key} HTTP/1.1\r\nHost: 127.0.0.1:{server.s3_port}\r\n"
    head += f"Content-Length: {size}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in request.headers.items())
    connection = socket.create_connection(("127.0.0.1", server.s3_port))
    connection.sendall(head.encode() + b"\r\n" + body[:MiB])
    return connection


def test_kill_9_keeps_acknowledged_puts_and_drops_half_received_ones(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start_server(data_dir)
    s3 = client(server)
    s3.create_bucket(Bucket="durable")
    payload = os.urandom(3 * MiB)
    s3.put_object(Bucket="durable", Key="acknowledged.bin", Body=payload)
    s3.close()
    connection = _start_half_upload(server, "half.bin", 8 * MiB)
    incoming = data_dir / "blobs" / "incoming"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(incoming.iterdir()):
        time.sleep(0.05)
    assert any(incoming.iterdir()), "the half upload never reached the disk"
    server.kill()
    connection.close()

    restarted = start_server(data_dir, env={"OSCAR_PASSWORD": server.password})
    try:
        s3 = client(restarted)
        assert s3.get_object(Bucket="durable", Key="acknowledged.bin")["Body"].read() == payload
        keys = [item["Key"] for item in s3.list_objects_v2(Bucket="durable")["Contents"]]
        assert keys == ["acknowledged.bin"]
        assert list(incoming.iterdir()) == []  # the leftover was removed on start
        s3.close()
    finally:
        restarted.stop()
    database = Database(f"sqlite:///{data_dir / 'oscar.db'}")
    events = ObjectStore(database, data_dir).events_after(0)
    database.close()
    assert [(event.kind, event.key, event.size) for event in events] == [
        ("created", "acknowledged.bin", 3 * MiB)
    ]
