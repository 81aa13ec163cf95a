"""`/run` with `--runtime process` (no container engine): each request is a host process.
The route is called in-process."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.inprocess import InProcessServer, in_process_server

SCRIPT = 'printf "got: "; cat "$INPUT_FILE_PATH"; echo done > "$TMP_OUTPUT_DIR/result.txt"\n'


def files_under(root: Path) -> list[Path]:
    """The files left under `root`; the server may remove a directory while this walks it
    (`os.walk` skips what vanished, where `Path.rglob` raises)."""
    return [Path(directory, name) for directory, _, names in os.walk(root) for name in names]


@pytest.fixture
def process_server(tmp_path: Path) -> Iterator[InProcessServer]:
    with in_process_server(tmp_path / "data", runtime="process") as running:
        yield running


def test_run_answers_with_the_process_runtime(process_server: InProcessServer) -> None:
    definition = {"name": "hosted", "image": "unused", "script": SCRIPT}
    with process_server.client() as client:
        assert client.post("/system/services", json=definition).status_code == 201

        answer = client.post("/run/hosted", content=b'{"a": 1}')
        refused = client.post("/run/hosted", content=b"not base64!")

    assert answer.status_code == 200, answer.text
    assert base64.b64decode(answer.text) == b"done\n"
    assert refused.status_code == 400
    assert "'!' is not base64" in refused.text
    work = process_server.data_dir / "run"
    deadline = time.monotonic() + 5  # the answer's directory goes once the answer is sent
    while files_under(work) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert files_under(work) == []
