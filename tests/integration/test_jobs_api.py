"""The jobs and logs routes over real HTTP, with OSCAR's shapes, and de-duplication."""

from __future__ import annotations

import base64
import json
import re
import socket
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from oscarpy.engine.records import JobStatus
from tests.support.jobs import Harness, running_engine, unique

pytestmark = pytest.mark.docker

COPY_INPUT = 'cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/result"\n'


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, docker_client: object) -> Iterator[Harness]:
    with running_engine(tmp_path_factory.mktemp("api") / "data") as harness:
        yield harness


def minio_event(bucket: str, key: str, etag: str | None = None) -> dict[str, object]:
    obj: dict[str, object] = {"key": quote(key), "size": 3}
    if etag:
        obj["eTag"] = etag
    return {
        "EventName": "s3:ObjectCreated:Put",
        "Key": f"{bucket}/{key}",
        "Records": [
            {"eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {"name": bucket}, "object": obj}}
        ],
    }


def test_job_with_a_minio_event_stages_the_object_and_is_idempotent(platform: Harness) -> None:
    bucket = unique("event")
    service = platform.service(script=COPY_INPUT, output=[{"path": f"{bucket}/out"}])
    etag = platform.put(bucket, "data/my file.txt", b"abc")

    first = platform.client.post(
        f"/job/{service.name}", json=minio_event(bucket, "data/my file.txt")
    )
    again = platform.client.post(
        f"/job/{service.name}", json=minio_event(bucket, "data/my file.txt", etag)
    )

    assert first.status_code == 201, first.text
    job_id = first.json()["job_id"]
    assert first.headers["location"] == f"/system/logs/{service.name}/{job_id}"
    assert again.status_code == 201 and again.json()["job_id"] == job_id
    assert platform.object_appears(bucket, "out/result") == b"abc"
    assert len(platform.jobs(service.name)) == 1


def test_job_with_a_json_body_passes_it_as_is(platform: Harness) -> None:
    bucket = unique("json")
    service = platform.service(
        script=COPY_INPUT + 'echo "$EVENT"\n', output=[{"path": f"{bucket}/o"}]
    )

    answer = platform.client.post(f"/job/{service.name}", content=b'{"numbers": [1, 2]}')

    assert answer.status_code == 201
    assert platform.object_appears(bucket, "o/result") == b'{"numbers": [1, 2]}'
    (job,) = platform.finished_jobs(service.name)
    assert job.id == answer.json()["job_id"] and job.status is JobStatus.SUCCEEDED
    assert '{"numbers": [1, 2]}' in platform.engine.ledger.read_log(job.id)


def test_job_with_a_base64_body_is_decoded(platform: Harness) -> None:
    bucket = unique("b64")
    service = platform.service(script=COPY_INPUT, output=[{"path": f"{bucket}/o"}])
    payload = bytes(range(256))

    answer = platform.client.post(f"/job/{service.name}", content=base64.b64encode(payload))

    assert answer.status_code == 201
    assert platform.object_appears(bucket, "o/result") == payload


def test_job_accepts_the_service_token_and_refuses_others(platform: Harness) -> None:
    one = platform.service(script="true\n")
    other = platform.service(script="true\n")
    url = f"{platform.client.base_url}/job/{one.name}"
    import httpx

    good = httpx.post(url, content=b"{}", headers={"Authorization": f"Bearer {one.token}"})
    wrong = httpx.post(url, content=b"{}", headers={"Authorization": f"Bearer {other.token}"})
    none = httpx.post(url, content=b"{}")

    assert good.status_code == 201
    assert (wrong.status_code, none.status_code) == (401, 401)
    assert platform.client.post("/job/no-such-service", content=b"{}").status_code == 404


def test_each_upload_makes_one_job_even_with_the_same_bytes(platform: Harness) -> None:
    bucket = unique("dup")
    service = platform.service(script="true\n", input=[{"path": f"{bucket}/in"}])
    platform.put(bucket, "in/a", b"same")
    platform.finished_jobs(service.name, 1)
    platform.put(bucket, "in/a", b"same")  # uploaded again to run again, as in OSCAR
    platform.put(bucket, "in/a", b"changed")

    jobs = platform.finished_jobs(service.name, 3)
    assert len({job.etag for job in jobs}) == 2
    # Objects that had a job are not run again by the reconcile pass, nor by their event.
    assert platform.client.post(f"/system/services/{service.name}/reconcile").json() == {
        "created": 0
    }
    event = platform.client.post(f"/job/{service.name}", json=minio_event(bucket, "in/a"))
    assert event.json()["job_id"] in {job.id for job in jobs}
    assert len(platform.jobs(service.name)) == 3


def test_reconcile_creates_jobs_for_files_that_were_already_there(platform: Harness) -> None:
    bucket = unique("old")
    sentinel = platform.service(script="true\n", input=[{"path": f"{bucket}/sentinel"}])
    for index in range(3):
        platform.put(bucket, f"in/{index}.txt", b"x")
    platform.put(bucket, "other/skip.txt", b"x")
    # The intake reads events in order: once the last file's event made its job, the files
    # above were read too, before the service below existed (else the intake, catching up
    # late, would make their jobs itself and reconcile would find nothing to do).
    platform.put(bucket, "sentinel/last.txt", b"x")
    platform.finished_jobs(sentinel.name, 1)
    service = platform.service(
        script=COPY_INPUT, input=[{"path": f"{bucket}/in"}], output=[{"path": f"{bucket}/out"}]
    )

    answer = platform.client.post(f"/system/services/{service.name}/reconcile")

    assert answer.status_code == 200 and answer.json() == {"created": 3}
    jobs = platform.finished_jobs(service.name, 3)
    assert sorted(job.key or "" for job in jobs) == ["in/0.txt", "in/1.txt", "in/2.txt"]
    assert platform.client.post(f"/system/services/{service.name}/reconcile").json() == {
        "created": 0
    }
    assert platform.client.post("/system/services/none-such/reconcile").status_code == 404


def test_logs_list_has_oscar_shape_and_pages(platform: Harness) -> None:
    bucket = unique("list")
    service = platform.service(script="echo hi\n", input=[{"path": f"{bucket}/in"}])
    for index in range(5):
        platform.put(bucket, f"in/{index}", b"x")
    platform.finished_jobs(service.name, 5)

    first = platform.client.get(f"/system/logs/{service.name}", params={"limit": 3}).json()
    second = platform.client.get(
        f"/system/logs/{service.name}", params={"limit": 3, "page": first["next_page"]}
    ).json()

    assert len(first["jobs"]) == 3 and first["remaining_jobs"] == 2 and first["next_page"]
    assert len(second["jobs"]) == 2 and second["remaining_jobs"] == 0
    assert second["next_page"] == ""
    assert not set(first["jobs"]) & set(second["jobs"])
    info = next(iter(first["jobs"].values()))
    assert info["status"] == "Succeeded"
    for field in ("creation_time", "start_time", "finish_time"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info[field])
    # Which machine ran each attempt: this one, with a local runtime.
    assert info["node"] == socket.gethostname() and info["nodes"] == [socket.gethostname()]
    for bad_page in ("x", "-1", "\u00b9"):  # "¹" passes str.isdigit() but not int()
        bad = platform.client.get(f"/system/logs/{service.name}", params={"page": bad_page})
        assert bad.status_code == 400, bad_page
    assert platform.client.get("/system/logs/none-such").status_code == 404


def test_a_job_log_is_text_with_optional_timestamps(platform: Harness) -> None:
    service = platform.service(script="echo first\necho second >&2\n")
    job_id = platform.client.post(f"/job/{service.name}", content=b"{}").json()["job_id"]
    platform.finished_jobs(service.name)

    plain = platform.client.get(f"/system/logs/{service.name}/{job_id}")
    stamped = platform.client.get(
        f"/system/logs/{service.name}/{job_id}", params={"timestamps": "true"}
    )

    assert plain.headers["content-type"].startswith("text/plain")
    assert "first\n" in plain.text and "second\n" in plain.text
    assert re.search(r"^\d{4}-\d\d-\d\dT[\d:.]+Z first$", stamped.text, re.MULTILINE)
    assert platform.client.get(f"/system/logs/{service.name}/nope").status_code == 404


def test_a_running_job_log_is_readable_and_delete_stops_it(platform: Harness) -> None:
    service = platform.service(script="echo started\nsleep 60\n")
    job_id = platform.client.post(f"/job/{service.name}", content=b"{}").json()["job_id"]
    url = f"/system/logs/{service.name}/{job_id}"
    platform.wait_for(lambda: "started" in platform.client.get(url).text, what="live log")
    listed = platform.client.get(f"/system/logs/{service.name}").json()["jobs"][job_id]
    assert listed["status"] == "Running"

    assert platform.client.delete(url).status_code == 204

    assert platform.client.get(url).status_code == 404
    assert platform.docker_containers(job_id) == []


def test_delete_removes_succeeded_jobs_or_all(platform: Harness) -> None:
    bucket = unique("del")
    service = platform.service(
        script='test "$(cat $INPUT_FILE_PATH)" = ok\n', input=[{"path": f"{bucket}/in"}]
    )
    platform.put(bucket, "in/good", b"ok")
    platform.put(bucket, "in/bad", b"no")
    platform.finished_jobs(service.name, 2)

    assert platform.client.delete(f"/system/logs/{service.name}").status_code == 204
    assert [job.status for job in platform.jobs(service.name)] == [JobStatus.FAILED]
    assert (
        platform.client.delete(f"/system/logs/{service.name}", params={"all": "true"}).status_code
        == 204
    )
    assert platform.jobs(service.name) == []


def test_deleting_a_service_removes_its_jobs_and_logs(platform: Harness) -> None:
    bucket = unique("gone")
    service = platform.service(
        script="sleep 30\n", input=[{"path": f"{bucket}/in"}], max_concurrency=1
    )
    platform.put(bucket, "in/a", b"x")
    platform.put(bucket, "in/b", b"x")
    platform.wait_for(lambda: platform.docker_containers_of(service.name), what="a container")

    platform.registry.delete(service.name)

    assert platform.jobs(service.name) == []
    platform.wait_for(lambda: platform.docker_containers_of(service.name) == [], timeout=15)


def test_event_json_is_not_mistaken_for_a_body(platform: Harness) -> None:
    service = platform.service(script="true\n")
    event = json.dumps({"Records": [{"s3": {"bucket": {"name": "x"}}}]}).encode()

    answer = platform.client.post(f"/job/{service.name}", content=event)

    assert answer.status_code == 201
    (job,) = platform.finished_jobs(service.name)
    assert job.source.value == "invocation" and job.status is JobStatus.SUCCEEDED
