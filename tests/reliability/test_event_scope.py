"""A service's token opens `POST /job/{service}`, which accepts a MinIO/S3 event naming the
object to process. Whoever holds the token (any script of that service) must not make it stage
objects of other buckets: with the token, an event must name an object under one of the
service's inputs, else 403 and no job. The admin may name any object."""

from __future__ import annotations

import json

import httpx

from tests.support.server import RunningServer


def _event(bucket: str, key: str) -> str:
    record = {"s3": {"bucket": {"name": bucket}, "object": {"key": key}}}
    return json.dumps({"EventName": "s3:ObjectCreated:Put", "Records": [record]})


def test_a_token_cannot_make_its_service_process_another_bucket(
    process_server: RunningServer,
) -> None:
    token = process_server.create_service(
        {
            "name": "copier",
            "image": "unused",
            "script": 'cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/"\n',
            "input": [{"path": "mine/in"}],
            "output": [{"path": "mine/out"}],
        }
    )["token"]
    s3 = process_server.s3_client()
    s3.create_bucket(Bucket="private")
    s3.put_object(Bucket="private", Key="secret.txt", Body=b"payroll")
    bearer = {"Authorization": f"Bearer {token}"}

    with httpx.Client(base_url=process_server.url, timeout=30) as caller:
        refused = [
            caller.post("/job/copier", content=_event(bucket, key), headers=bearer)
            for bucket, key in [
                ("private", "secret.txt"),
                ("mine", "out/x.txt"),  # the service's own output is not an input
                ("mine", "in-other/x.txt"),  # a sibling prefix, not under mine/in/
            ]
        ]
        allowed = caller.post("/job/copier", content=_event("mine", "in/a.txt"), headers=bearer)
    assert [answer.status_code for answer in refused] == [403, 403, 403], [
        answer.text for answer in refused
    ]
    assert "copier" in refused[0].text
    assert allowed.status_code == 201, allowed.text
    with process_server.client() as admin:
        jobs = admin.get("/system/logs/copier").json()["jobs"]
        assert list(jobs) == [allowed.json()["job_id"]]
        # The admin may still have any object processed.
        assert admin.post("/job/copier", content=_event("private", "secret.txt")).status_code == 201
