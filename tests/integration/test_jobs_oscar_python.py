"""A job driven by the official `oscar_python` client, unchanged: upload, list, logs, delete."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from oscar_python.client import Client

from tests.support.server import start_server

pytestmark = pytest.mark.docker

FDL = """\
functions:
  oscar:
  - oscar-py-test:
      name: shout
      cpu: '0.25'
      memory: 64Mi
      image: oscar-test/busybox:latest
      script: script.sh
      input:
      - storage_provider: minio.default
        path: shout/in
      output:
      - storage_provider: minio.default
        path: shout/out
"""
SCRIPT = """#!/bin/sh
echo "shouting $(basename "$INPUT_FILE_PATH")"
tr a-z A-Z < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/$(basename "$INPUT_FILE_PATH")"
"""


def test_jobs_through_oscar_python(tmp_path: Path, docker_client: object) -> None:
    server = start_server(tmp_path / "data", env={"OSCAR_PASSWORD": "python-client-password"})
    try:
        (tmp_path / "script.sh").write_text(SCRIPT)
        (tmp_path / "fdl.yaml").write_text(FDL)
        (tmp_path / "note.txt").write_text("quiet words\n")
        client = Client(
            {
                "cluster_id": "oscar-py-test",
                "endpoint": server.url,
                "user": server.username,
                "password": server.password,
                "ssl": "False",
            }
        )
        assert client.create_service(str(tmp_path / "fdl.yaml")).status_code == 201
        storage = client.create_storage_client("shout")

        storage.upload_file("minio.default", str(tmp_path / "note.txt"), "shout/in")

        deadline = time.monotonic() + 60
        jobs: dict[str, dict[str, str]] = {}
        while time.monotonic() < deadline:
            jobs = json.loads(client.list_jobs("shout").text)["jobs"]
            if jobs and all(job["status"] == "Succeeded" for job in jobs.values()):
                break
            time.sleep(0.2)
        (job_id,) = jobs
        assert "shouting note.txt" in client.get_job_logs("shout", job_id).text
        (tmp_path / "result").mkdir()
        storage.download_file("minio.default", str(tmp_path / "result"), "shout/out/note.txt")
        assert (tmp_path / "result" / "note.txt").read_text() == "QUIET WORDS\n"

        assert client.remove_job("shout", job_id).status_code == 204
        assert json.loads(client.list_jobs("shout").text)["jobs"] == {}
        assert client.remove_all_jobs("shout").status_code == 204
    finally:
        server.stop()
