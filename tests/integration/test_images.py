"""Images against a real `oscar serve` and the real Docker Engine: the pull policy, the registry
login of `image_pull_secrets`, and `image_prefetch`.

The registry is a real HTTP server on loopback (Docker pulls from `127.0.0.1:<port>` over plain
HTTP): it asks for Basic credentials, records what the Docker Engine sends, and has no images.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.support.cli import TEST_IMAGE
from tests.support.server import RunningServer

pytestmark = pytest.mark.docker

PASSWORD = "s3cret-registry-pass"


class _Registry(BaseHTTPRequestHandler):
    seen: list[tuple[str, str]]

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        authorization = self.headers.get("Authorization", "")
        self.seen.append((self.path, authorization))
        if not authorization:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="test registry"')
            self.send_header("Docker-Distribution-API-Version", "registry/2.0")
            self.end_headers()
            return
        body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"no such image"}]}'
        self.send_response(404 if self.path != "/v2/" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET  # noqa: N815

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def registry(docker_client: object) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    seen: list[tuple[str, str]] = []
    handler = type("Registry", (_Registry,), {"seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()
    httpd.server_close()


def _wait(condition: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("timed out")


def _logins(seen: list[tuple[str, str]]) -> set[str]:
    return {
        base64.b64decode(auth.split(" ", 1)[1]).decode()
        for _, auth in seen
        if auth.startswith("Basic ")
    }


def test_image_pull_secrets_log_in_to_the_registry_and_stay_secret(
    server: RunningServer, registry: tuple[str, list[tuple[str, str]]]
) -> None:
    address, seen = registry
    created = server.create_service(
        {
            "name": "private-image",
            "image": f"{address}/team/tool:1.0",
            "script": "echo $REGISTRY_LOGIN",
            "image_pull_secrets": ["registry-login"],
            "environment": {"secrets": {"registry-login": f"robot:{PASSWORD}"}},
        }
    )
    assert created["warnings"] == []
    assert PASSWORD not in str(created)
    with server.client() as client:
        job = client.post("/job/private-image", json={"x": 1}).json()["job_id"]
        _wait(lambda: "robot:" + PASSWORD in _logins(seen))
        assert any(path.startswith("/v2/team/tool/manifests/1.0") for path, _ in seen)
        shown = client.get("/system/services/private-image").text
        assert PASSWORD not in shown
        _wait(lambda: "cannot be pulled" in client.get(f"/system/logs/private-image/{job}").text)
        assert PASSWORD not in client.get(f"/system/logs/private-image/{job}").text
        client.delete("/system/services/private-image")
    assert PASSWORD not in server.log()


def test_image_prefetch_pulls_at_create_time(
    server: RunningServer, registry: tuple[str, list[tuple[str, str]]]
) -> None:
    address, seen = registry
    server.create_service(
        {
            "name": "prefetched",
            "image": f"{address}/prefetched:2",
            "script": "true",
            "image_prefetch": True,
        }
    )
    # No job: the pull comes from the create alone.
    _wait(lambda: any(path.startswith("/v2/") for path, _ in seen))
    with server.client() as client:
        client.delete("/system/services/prefetched")


def test_never_does_not_pull_and_says_so(
    server: RunningServer, registry: tuple[str, list[tuple[str, str]]]
) -> None:
    address, seen = registry
    server.create_service(
        {
            "name": "never-pull",
            "image": f"{address}/absent:3",
            "script": "true",
            "image_pull_policy": "Never",
        }
    )
    with server.client() as client:
        job = client.post("/job/never-pull", json={}).json()["job_id"]
        _wait(
            lambda: (
                "image_pull_policy is Never" in client.get(f"/system/logs/never-pull/{job}").text
            )
        )
        client.delete("/system/services/never-pull")
    assert seen == []


def test_the_default_policy_runs_a_local_latest_image_when_no_registry_answers(
    server: RunningServer,
) -> None:
    # `latest` is pulled every time (Always), as OSCAR does; here no registry knows the test
    # image, so the host's copy runs.
    server.create_service({"name": "local-latest", "image": TEST_IMAGE, "script": "echo ran"})
    with server.client() as client:
        job = client.post("/job/local-latest", json={}).json()["job_id"]
        _wait(lambda: "ran" in client.get(f"/system/logs/local-latest/{job}").text)
        client.delete("/system/services/local-latest")


def test_a_bad_pull_policy_is_refused(server: RunningServer) -> None:
    answer = httpx.post(
        f"{server.url}/system/services",
        auth=server.auth,
        json={"name": "bad-policy", "image": TEST_IMAGE, "script": "-", "image_pull_policy": "x"},
    )
    assert answer.status_code == 400
    assert "image_pull_policy" in answer.text
