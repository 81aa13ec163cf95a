"""An external storage provider defined without keys must not borrow the server's own cloud
credentials (boto3 falls back to the environment, ~/.aws and the instance role): a service
could then read and write wherever the host may. Here the host's ambient credentials open the
server's own S3 port; a provider with empty keys pointed at it must fail, write nothing."""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.server import start_server

PASSWORD = "ambient-credentials-password"


def test_a_provider_with_empty_keys_does_not_use_the_hosts_credentials(tmp_path: Path) -> None:
    ambient = {"AWS_ACCESS_KEY_ID": "oscar", "AWS_SECRET_ACCESS_KEY": PASSWORD}
    env = {"OSCAR_PASSWORD": PASSWORD, "OSCAR_RUNTIME": "process", "OSCAR_JOB_RETRY_LIMIT": "0"}
    server = start_server(tmp_path / "data", env={**env, **ambient})
    try:
        s3 = server.s3_client()
        s3.create_bucket(Bucket="victim")
        server.create_service(
            {
                "name": "borrower",
                "image": "unused",
                "script": 'echo stolen > "$TMP_OUTPUT_DIR/out.txt"\n',
                "input": [{"path": "borrower/in"}],
                "output": [{"storage_provider": "minio.ext", "path": "victim/out"}],
                "storage_providers": {
                    "minio": {"ext": {"endpoint": server.s3_url, "verify": False}}
                },
            }
        )
        s3.put_object(Bucket="borrower", Key="in/x.txt", Body=b"x")
        with server.client() as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                jobs = client.get("/system/logs/borrower").json()["jobs"]
                states = [job["status"] for job in jobs.values()]
                if states and all(state in ("Succeeded", "Failed") for state in states):
                    break
                time.sleep(0.3)
            (job_id,) = jobs
            log = client.get(f"/system/logs/borrower/{job_id}").text
        assert states == ["Failed"], log
        assert "access_key" in log, log
        assert s3.list_objects_v2(Bucket="victim").get("KeyCount", 0) == 0
    finally:
        server.stop()
