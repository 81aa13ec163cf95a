"""Access control, table-driven: every REST route of the OpenAPI document and the main S3
operations, each tried with no credentials, a wrong password, a wrong signature, another
service's token and the right credentials. Only the right credentials get in (`/health` is the
one open route), and a refused request changes nothing."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.support.inprocess import InProcessServer, in_process_server
from tests.support.sigv4 import signed_headers

PASSWORD = "access-control-password-1"
SCRIPT = "echo hello\n"


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _definition(name: str) -> dict[str, object]:
    return {
        "name": name,
        "image": "unused",
        "script": SCRIPT,
        "input": [{"path": f"{name}/in"}],
        "output": [{"path": f"{name}/out"}],
    }


@dataclass
class Installation:
    server: InProcessServer
    token: str
    """The token of the service `target`, the one every route is called on."""
    other_token: str
    """The token of the service `other`: must not open `target`."""


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    data = tmp_path_factory.mktemp("access") / "data"
    # Every wrong credential is tried on purpose: no sign-in throttling (test_brute_force.py).
    with in_process_server(
        data, password=PASSWORD, runtime="process", signin_free_failures=1000000
    ) as server:
        tokens = {}
        with server.client() as client:
            for name in ("target", "other"):
                created = client.post("/system/services", json=_definition(name))
                assert created.status_code == 201, created.text
                tokens[name] = created.json()["token"]
        assert tokens["target"] and tokens["other"] and tokens["target"] != tokens["other"]
        yield Installation(server, tokens["target"], tokens["other"])


def _routes(server: InProcessServer) -> list[tuple[str, str, bool]]:
    """(method, path template, whether a service's own token opens it) from /openapi.json."""
    with server.client() as client:
        document = client.get("/openapi.json").json()
    routes = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            schemes = {name for entry in operation.get("security") or [] for name in entry}
            routes.append((method.upper(), path, "serviceToken" in schemes))
    return routes


def _request(
    client: httpx.Client, method: str, template: str, authorization: str | None, *, safe: bool
) -> httpx.Response:
    """One call of a route with a valid body; `safe` picks arguments that destroy nothing."""
    service = "target" if not (safe and method == "DELETE") else "absent-service"
    path = template.replace("{service_name}", service).replace("{job_id}", "no-such-job")
    headers = {"Authorization": authorization} if authorization is not None else {}
    body: dict[str, object] = {}
    if method == "POST" and path == "/system/services":
        body = {"json": _definition("created-by-caller")}
    elif method == "PUT" and path == "/system/services":
        body = {"json": {**_definition("target"), "script": "echo changed\n"}}
    elif method == "POST":
        body = {"content": b"payload"}
    return client.request(method, path, headers=headers, **body)  # type: ignore[arg-type]


def test_every_rest_route_needs_the_right_credentials(installation: Installation) -> None:
    server = installation.server
    routes = _routes(server)
    assert len(routes) >= 15, routes  # the whole API, not a handful
    wrong = {
        "no credentials": None,
        "wrong password": _basic(server.username, "not-" + PASSWORD),
        "wrong user": _basic("intruder", PASSWORD),
        "malformed basic": "Basic " + base64.b64encode(PASSWORD.encode()).decode(),
        "wrong signature": "Bearer " + installation.token[:-1] + "x",
        "another service's token": "Bearer " + installation.other_token,
        "password as bearer": "Bearer " + PASSWORD,
    }
    refused: list[str] = []
    with server.client(authenticated=False) as client:
        for method, template, token_opens in routes:
            if template == "/health":
                assert client.get("/health").text == "Ok"
                continue
            for label, authorization in wrong.items():
                answer = _request(client, method, template, authorization, safe=False)
                if answer.status_code != 401:
                    refused.append(f"{method} {template} [{label}] -> {answer.status_code}")
                elif PASSWORD in answer.text or installation.token in answer.text:
                    refused.append(f"{method} {template} [{label}] echoes a secret")
            own_token = _request(
                client, method, template, "Bearer " + installation.token, safe=True
            )
            if token_opens:
                assert own_token.status_code not in (401, 403), (method, template, own_token.text)
            elif own_token.status_code != 401:
                refused.append(f"{method} {template} [a service token] -> {own_token.status_code}")
        assert refused == []

        # Nothing a refused request asked for happened.
        with server.client() as admin:
            names = sorted(service["name"] for service in admin.get("/system/services").json())
            assert names == ["other", "target"]
            assert admin.get("/system/services/target").json()["script"] == SCRIPT
            jobs = admin.get("/system/logs/target").json()["jobs"]
            assert jobs == {} or len(jobs) == 1  # the one job its own token was allowed to make

        # The right credentials get in: no 401/403, and no server error.
        admitted = []
        for method, template, _ in routes:
            answer = _request(
                client, method, template, _basic(server.username, PASSWORD), safe=True
            )
            admitted.append((method, template, answer.status_code))
        assert [entry for entry in admitted if entry[2] in (401, 403) or entry[2] >= 500] == []


# --- S3 ----------------------------------------------------------------------------------


def _tampered(headers: dict[str, str]) -> dict[str, str]:
    signature_at = headers["Authorization"].rindex("Signature=") + len("Signature=")
    original = headers["Authorization"]
    flipped = "0" if original[signature_at] != "0" else "1"
    return {
        **headers,
        "Authorization": original[:signature_at] + flipped + original[signature_at + 1 :],
    }


#: (operation, method, path and query, body, expected success status), in an order in which
#: each right-credential call prepares the next.
S3_OPERATIONS = [
    ("ListBuckets", "GET", "/", b"", 200),
    ("CreateBucket", "PUT", "/guarded", b"", 200),
    ("PutObject", "PUT", "/guarded/in/file.txt", b"guarded content", 200),
    ("GetObject", "GET", "/guarded/in/file.txt", b"", 200),
    ("ListObjectsV2", "GET", "/guarded?list-type=2", b"", 200),
    ("CreateMultipartUpload", "POST", "/guarded/in/big.bin?uploads=", b"", 200),
    ("DeleteObject", "DELETE", "/guarded/in/file.txt", b"", 204),
]


def test_every_s3_operation_needs_the_right_signature(installation: Installation) -> None:
    server = installation.server
    with httpx.Client(base_url=server.s3_url, timeout=30) as client:

        def state() -> tuple[int, bytes]:
            right = signed_headers("GET", f"{server.s3_url}/", server.username, PASSWORD)
            listing = client.get("/", headers=right)
            return listing.status_code, listing.content

        for operation, method, target, body, success in S3_OPERATIONS:
            url = f"{server.s3_url}{target}"
            right = signed_headers(method, url, server.username, PASSWORD, body)
            attempts = {
                "no credentials": {},
                "wrong password": signed_headers(
                    method, url, server.username, "wrong-password", body
                ),
                "wrong access key": signed_headers(method, url, "intruder", PASSWORD, body),
                "wrong signature": _tampered(right),
                "another service's token": {"Authorization": "Bearer " + installation.other_token},
                "admin basic on S3": {"Authorization": _basic(server.username, PASSWORD)},
            }
            before = state()
            for label, headers in attempts.items():
                answer = client.request(method, target, headers=headers, content=body)
                assert answer.status_code == 403, (operation, label, answer.text)
                assert b"<Code>" in answer.content, (operation, label, answer.text)
                assert PASSWORD not in answer.text
            assert state() == before, f"a refused {operation} changed the store"
            if method == "PUT" and target.count("/") > 1:
                head = signed_headers("HEAD", url, server.username, PASSWORD)
                assert client.head(target, headers=head).status_code == 404
            answer = client.request(method, target, headers=right, content=body)
            assert answer.status_code == success, (operation, answer.text)
