"""Another local user reads nothing of the data directory (issue 13, item 8).

A real `oscar serve` (as root) holds an object, a `/job` body and a running job's work
directory; the user `nobody` then tries to list and read every file in it. The job must still
succeed: the container's user keeps reaching its own work directory through the bind mount.
"""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import start_server

pytestmark = pytest.mark.docker

SCRIPT = 'sleep 4\ncat "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/$JOB_UUID.txt"\n'


def _as_nobody(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command],
        capture_output=True,
        text=True,
        timeout=30,
    )


def _files(root: Path) -> list[Path]:
    found = []
    for directory, _, names in os.walk(root):
        found += [Path(directory) / name for name in names]
    return [path for path in found if stat.S_ISREG(path.lstat().st_mode)]


@pytest.fixture
def open_parent() -> Iterator[Path]:
    """A directory any user may pass through (pytest's own temporary ones are 0700, which
    would hide the data directory whatever its modes)."""
    parent = Path(tempfile.mkdtemp(prefix="oscar-private-"))
    os.chmod(parent, 0o755)
    yield parent
    shutil.rmtree(parent, ignore_errors=True)


def test_another_local_user_reads_nothing_of_the_data_directory(
    open_parent: Path, docker_client: Any
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another user")
    data = open_parent / "data"
    server = start_server(data)
    try:
        server.create_service(
            {
                "name": "private",
                "image": "oscar-test/busybox:latest",
                "script": SCRIPT,
                "input": [{"path": "private/in"}],
                "output": [{"path": "private/out"}],
            }
        )
        s3 = server.s3_client()
        s3.put_object(Bucket="private", Key="in/secret.txt", Body=b"stored secret\n")
        with server.client() as client:
            answer = client.post("/job/private", content=base64.b64encode(b"body secret\n"))
        assert answer.status_code == 201, answer.text
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any((data / "jobs").glob("*/input/*")):
            time.sleep(0.1)
        files = _files(data)
        names = {path.name for path in files}
        assert {"oscar.db", "credentials.json"} <= names
        assert any("job-bodies" in path.parts for path in files)
        assert any("jobs" in path.parts for path in files), "no job was running"

        assert _as_nobody("ls", str(data)).returncode != 0
        readable = [str(path) for path in files if _as_nobody("cat", str(path)).returncode == 0]
        assert readable == []
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        outside_work = [path for path in files if not {"jobs", "run"} & set(path.parts)]
        open_modes = {
            str(path): oct(stat.S_IMODE(path.stat().st_mode))
            for path in outside_work
            if path.stat().st_mode & 0o077
        }
        assert open_modes == {}

        # The containers still use their work directories.
        deadline = time.monotonic() + 120
        outputs: list[str] = []
        while time.monotonic() < deadline and len(outputs) < 2:
            listed = s3.list_objects_v2(Bucket="private", Prefix="out/")
            outputs = [item["Key"] for item in listed.get("Contents", []) if item["Key"] != "out/"]
            time.sleep(0.5)
        assert len(outputs) == 2, server.log()[-3000:]
    finally:
        server.stop()
