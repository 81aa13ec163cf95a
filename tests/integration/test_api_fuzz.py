"""Property-based fuzzing of the REST API from its own OpenAPI document: no request gets a 5xx."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import start_server

pytestmark = pytest.mark.slow  # about 100 s of generated requests: started first

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))


def test_no_generated_request_gets_a_server_error(tmp_path: Path) -> None:
    assert shutil.which(SCHEMATHESIS), "schemathesis is a test dependency (pip install -e .[test])"
    server = start_server(tmp_path / "data", env={"OSCAR_PASSWORD": "fuzz-password"})
    try:
        command = [
            SCHEMATHESIS,
            "run",
            f"{server.url}/openapi.json",
            "--auth",
            f"{server.username}:{server.password}",
            "--checks",
            "not_a_server_error",
            "--phases",
            "examples,fuzzing",
            "--max-examples",
            "30",
            "--workers",
            "1",
            "--request-timeout",
            "20",
            "--no-color",
        ]
        run = subprocess.run(
            command, capture_output=True, text=True, timeout=420, cwd=tmp_path, check=False
        )
    finally:
        server.stop()
    report = f"{run.stdout[-6000:]}\n{run.stderr[-2000:]}\n{server.log()[-3000:]}"
    assert run.returncode == 0, report
    assert "Traceback" not in server.log()
