"""OSCAR's own web dashboard (grycap/oscar-dashboard) against oscar-py: each call its
`src/api/` makes, with the headers axios and the browser send from the dashboard's origin,
answered with the shapes the dashboard reads. The REST app runs in-process; the S3 port on a
real socket, where the dashboard uploads straight from the browser (SigV4, path-style)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from tests.support.inprocess import InProcessServer, in_process_server

DASHBOARD = "http://127.0.0.1:5173"
ELSEWHERE = "http://127.0.0.1:9999"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    data = tmp_path_factory.mktemp("oscar-dashboard") / "data"
    with in_process_server(data, runtime="process", cors_origins=f"{DASHBOARD}/") as running:
        yield running


def browser_headers(server: InProcessServer, origin: str = DASHBOARD) -> dict[str, str]:
    """What a browser sends with axios's defaults from the dashboard's page."""
    basic = base64.b64encode(f"{server.username}:{server.password}".encode()).decode()
    return {
        "Origin": origin,
        "Accept": "application/json, text/plain, */*",
        "Authorization": f"Basic {basic}",
        "Sec-Fetch-Site": "cross-site",
        "Sec-Fetch-Mode": "cors",
    }


@pytest.fixture(scope="module")
def browser(server: InProcessServer) -> Iterator[httpx.Client]:
    with server.client(authenticated=False, headers=browser_headers(server)) as client:
        yield client


def preflight(
    client: httpx.Client, url: str, method: str, origin: str = DASHBOARD
) -> httpx.Response:
    return client.options(
        url,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )


def test_preflights_and_answers_name_the_dashboards_origin(
    server: InProcessServer, browser: httpx.Client
) -> None:
    with server.client(authenticated=False) as anonymous:
        for path, method in (
            ("/system/info", "GET"),
            ("/system/services", "POST"),
            ("/system/buckets/b/presign", "POST"),
        ):
            answer = preflight(anonymous, path, method)
            assert answer.status_code == 200, (path, answer.text)
            assert answer.headers["access-control-allow-origin"] == DASHBOARD
            assert method in answer.headers["access-control-allow-methods"]
            assert "authorization" in answer.headers["access-control-allow-headers"].lower()
        refused = preflight(anonymous, "/system/info", "GET", origin=ELSEWHERE)
        assert "access-control-allow-origin" not in refused.headers
    info = browser.get("/system/info")
    assert info.status_code == 200
    assert info.headers["access-control-allow-origin"] == DASHBOARD
    assert "version" in info.json()


def test_the_services_pages(browser: httpx.Client) -> None:
    # The form's keys OSCAR ignores come back as warnings, not as an error.
    form = {
        "name": "from-dashboard",
        "image": "oscar-test/busybox:latest",
        "script": "echo hi",
        "cpu": "0.5",
        "memory": "256Mi",
        "input": [{"storage_provider": "minio.default", "path": "from-dashboard/in"}],
        "output": [{"storage_provider": "minio.default", "path": "from-dashboard/out"}],
        "imageRules": [],
        "imagePullSecrets": [],
        "limitsMemory": "",
        "valid": True,
    }
    created = browser.post("/system/services", json=form)
    assert created.status_code == 201, created.text
    assert created.headers["access-control-allow-origin"] == DASHBOARD
    assert any("imageRules" in line for line in created.json()["warnings"])
    listed = browser.get("/system/services", params={"include": "deployment"}).json()
    mine = next(item for item in listed if item["name"] == "from-dashboard")
    assert mine["expose"]["max_scale"] == 0 and mine["expose"]["min_scale"] == 0
    assert browser.get("/system/services/from-dashboard").json()["expose"]["max_scale"] == 0
    # The buckets page links a service's bucket to the service; its sharing is the service's.
    buckets = {item["bucket_name"]: item for item in browser.get("/system/buckets").json()}
    assert buckets["from-dashboard"]["metadata"] == {"from_service": "from-dashboard"}
    assert buckets["from-dashboard"]["owner"] == "cluster_admin"
    changed = browser.put(
        "/system/buckets", json={"bucket_name": "from-dashboard", "visibility": "public"}
    )
    assert changed.status_code == 403
    assert changed.text == "Forbidden action: A bucket from a service can't be modified"


def test_errors_are_the_message_itself_unless_json_is_preferred(
    server: InProcessServer, browser: httpx.Client
) -> None:
    missing = browser.get("/system/services/absent")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/plain")
    assert missing.text == "no service named 'absent'"
    assert missing.headers["access-control-allow-origin"] == DASHBOARD
    with server.client() as ours:  # oscar-py's dashboard script asks for JSON
        asked = ours.get("/system/services/absent", headers={"Accept": "application/json"})
        assert asked.json() == {"detail": "no service named 'absent'"}
        assert ours.get("/system/services/absent").text == "no service named 'absent'"


def test_the_buckets_pages_and_a_browser_upload(
    server: InProcessServer, browser: httpx.Client
) -> None:
    created = browser.post(
        "/system/buckets",
        json={"bucket_name": "dash-bucket", "visibility": "private", "allowed_users": []},
    )
    assert created.status_code == 201, created.text
    listed = browser.get("/system/buckets").json()
    assert {"bucket_name", "visibility", "allowed_users", "owner"} <= set(listed[0])
    assert "dash-bucket" in [item["bucket_name"] for item in listed]
    updated = browser.put(
        "/system/buckets",
        json={"bucket_name": "dash-bucket", "visibility": "restricted", "allowed_users": ["ann"]},
    )
    assert updated.status_code == 204

    # The upload goes from the browser to the S3 port: preflight, then a signed PUT.
    s3 = server.platform.s3_endpoint
    with httpx.Client() as direct:
        answer = preflight(direct, f"{s3}/dash-bucket/photo.txt", "PUT")
        assert (
            answer.status_code == 200 and answer.headers["access-control-allow-origin"] == DASHBOARD
        )
        refused = preflight(direct, f"{s3}/dash-bucket/photo.txt", "PUT", origin=ELSEWHERE)
        assert "access-control-allow-origin" not in refused.headers
    signed = server_s3_client(server).generate_presigned_url(
        "put_object", Params={"Bucket": "dash-bucket", "Key": "photo.txt"}, ExpiresIn=60
    )
    put = httpx.put(signed, content=b"pixels", headers={"Origin": DASHBOARD})
    assert put.status_code == 200
    assert put.headers["access-control-allow-origin"] == DASHBOARD
    assert "etag" in put.headers["access-control-expose-headers"].lower()

    details = browser.get("/system/buckets/dash-bucket").json()
    assert [item["object_name"] for item in details["objects"]] == ["photo.txt"]
    presigned = browser.post(
        "/system/buckets/dash-bucket/presign",
        json={"object_key": "photo.txt", "operation": "download", "expires_in": 60},
    ).json()
    assert httpx.get(presigned["url"]).content == b"pixels"
    assert browser.delete("/system/buckets/dash-bucket").status_code == 204


def test_other_origins_cannot_change_anything(server: InProcessServer) -> None:
    with server.client(authenticated=False, headers=browser_headers(server, ELSEWHERE)) as other:
        refused = other.post("/system/buckets", json={"bucket_name": "from-elsewhere"})
        assert refused.status_code == 403
        assert "access-control-allow-origin" not in refused.headers


def server_s3_client(server: InProcessServer) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=server.s3_url,
        aws_access_key_id=server.username,
        aws_secret_access_key=server.password,
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
