"""Secrets (`environment.secrets`, provider secret keys, the admin password, service tokens)
never reach the server log, a job's log, an error message or a `GET` response."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.support.server import free_port, start_server

pytestmark = [pytest.mark.docker]

PASSWORD = "admin-password-never-shown-42"
ENV_SECRET = "environment-secret-value-1729"
PROVIDER_SECRET = "provider-secret-key-value-314"
SCRIPT = 'echo "the key is $API_KEY"\nenv\ncp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/copy.txt"\n'


def test_secrets_stay_out_of_logs_errors_and_responses(
    tmp_path: Path, docker_client: object
) -> None:
    s3_port = free_port()
    server = start_server(
        tmp_path / "data",
        s3_port=s3_port,
        env={"OSCAR_PASSWORD": PASSWORD, "OSCAR_JOB_RETRY_BACKOFF": "0.05"},
    )
    definition = {
        "name": "secretive",
        "image": "oscar-test/busybox:latest",
        "script": SCRIPT,
        "memory": "32Mi",
        "cpu": "0.2",
        "environment": {"variables": {"PLAIN": "visible"}, "secrets": {"API_KEY": ENV_SECRET}},
        "input": [{"path": "secretive/in"}],
        # Outputs go to an external provider whose secret key is wrong: the upload fails, and
        # the error that says so must not quote the key.
        "output": [{"storage_provider": "minio.ext", "path": "secretive/out"}],
        "storage_providers": {
            "minio": {
                "ext": {
                    "endpoint": f"http://127.0.0.1:{s3_port}",
                    "verify": False,
                    "access_key": "oscar",
                    "secret_key": PROVIDER_SECRET,
                }
            }
        },
    }
    try:
        with server.client() as client:
            created = client.post("/system/services", json=definition)
            assert created.status_code == 201, created.text
            token = created.json()["token"]
            assert len(token) >= 16

            # Invalid definitions that carry secrets: the error names the problem, not them.
            invalid = {**definition, "name": "other", "cpu": "lots"}
            refused = client.post("/system/services", json=invalid)
            assert refused.status_code in (400, 422), refused.text
            assert "cpu" in refused.text
            bad_provider = {**definition, "name": "third"}
            # (A valid provider would be accepted and, as in OSCAR, its credentials shown to
            # the owner: this one is invalid, and its error must not quote the key.)
            bad_provider["storage_providers"] = {
                "minio": {"ext": {"secret_key": ENV_SECRET, "verify": "perhaps"}}
            }
            refused_provider = client.post("/system/services", json=bad_provider)
            assert refused_provider.status_code in (400, 422), refused_provider.text

            s3 = server.s3_client()
            s3.put_object(Bucket="secretive", Key="in/a.txt", Body=b"data\n")
            deadline = time.monotonic() + 60
            jobs: dict[str, dict[str, object]] = {}
            while time.monotonic() < deadline:
                jobs = client.get("/system/logs/secretive").json()["jobs"]
                if jobs and all(job["status"] in ("Succeeded", "Failed") for job in jobs.values()):
                    break
                time.sleep(0.2)
            assert len(jobs) == 1, jobs
            (job_id, job), *_ = jobs.items()
            job_log = client.get(f"/system/logs/secretive/{job_id}").text
            # The owner (here the admin) is given the storage providers' credentials, as OSCAR
            # gives them, for its storage clients; never an environment secret.
            owner_views = [
                created.text,
                client.get("/system/services").text,
                client.get("/system/services/secretive").text,
            ]
            responses = [
                refused.text,
                refused_provider.text,
                client.get("/system/logs/secretive").text,
                job_log,
                client.get("/system/info").text,
                client.get("/system/status").text,
                httpx.get(f"{server.url}/system/services", auth=("oscar", "wrong")).text,
            ]
        # The script did print its environment: the secret is masked, the rest is there.
        assert "the key is" in job_log and "PLAIN=visible" in job_log, job_log
        # The external upload failed with the wrong key, and the job says why.
        assert job["status"] == "Failed", job
    finally:
        server.stop()
    server_log = server.log()
    assert "secretive" in server_log  # the log did record this activity
    for secret in (PASSWORD, ENV_SECRET, PROVIDER_SECRET):
        for text in [*responses, server_log]:
            assert secret not in text, f"{secret!r} leaked into: {text[:2000]}"
    for text in owner_views:
        assert PASSWORD not in text and ENV_SECRET not in text, text[:2000]
    assert PROVIDER_SECRET in owner_views[2]  # shown to its owner, as OSCAR does
    # A service's token is handed to the admin (OSCAR clients need it to call the service) but
    # never to the log or a job.
    assert token not in server_log and token not in job_log
