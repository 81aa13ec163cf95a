"""Every secret a request carries is compared in constant time.

A timing measurement is too noisy for CI; instead, a real server (uvicorn on loopback, in this
process) is sent a wrong secret of every kind while `hmac.compare_digest` is replaced, in each
module that checks credentials, by a spy that records what it compares. Each refused request
must have had its wrong secret compared by the spy: the check went through the constant-time
comparison, not `==`. The spied modules are found by reading the package, so a new module that
compares secrets is spied (and must be proved) too.
"""

from __future__ import annotations

import ast
import base64
import hmac
import importlib
import pkgutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import boto3
import httpx
import pytest
from botocore.config import Config

import oscarpy
from oscarpy.auth.sessions import COOKIE_NAME, CSRF_HEADER
from oscarpy.engine.runtimes.process import ProcessRuntime
from tests.support.jobs import ADMIN, Harness, running_engine
from tests.support.oidc import OidcProvider, dashboard_settings, oidc_provider
from tests.support.sigv4 import signature_of, signed_headers

__all__ = ["oidc_provider"]

BUCKET = "timing"
WRONG = "wrong-secret-0123456789"

#: What the spy expects to find: every module of the package that compares with compare_digest.
SPIED = {
    "oscarpy.api.auth",
    "oscarpy.s3.sigv4",
    "oscarpy.auth.sessions",
    "oscarpy.s3.forms",
    "oscarpy.auth.oidc",
    "oscarpy.web.signin",
}


@dataclass(frozen=True)
class Comparison:
    module: str
    left: bytes
    right: bytes


class SpyHmac:
    """Stands for the `hmac` module inside one module of ours; records every `compare_digest`."""

    def __init__(self, module: str, calls: list[Comparison]) -> None:
        self._module = module
        self._calls = calls

    def compare_digest(self, left: Any, right: Any) -> bool:
        self._calls.append(Comparison(self._module, _bytes(left), _bytes(right)))
        return hmac.compare_digest(left, right)

    def __getattr__(self, name: str) -> Any:
        return getattr(hmac, name)


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")


def _modules_comparing_digests() -> set[str]:
    """Modules of the package whose source calls `compare_digest`."""
    found = set()
    for info in pkgutil.walk_packages(oscarpy.__path__, "oscarpy."):
        spec = importlib.util.find_spec(info.name)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            continue
        tree = ast.parse(Path(spec.origin).read_text())
        if any(
            isinstance(node, ast.Attribute) and node.attr == "compare_digest"
            for node in ast.walk(tree)
        ):
            found.add(info.name)
    return found


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    # No job runs here: the process runtime spares the test a container engine.
    data = tmp_path_factory.mktemp("timing") / "data"
    # Wrong secrets are sent on purpose, many times: no sign-in throttling here.
    with running_engine(data, runtime=ProcessRuntime(), signin_free_failures=1_000_000) as harness:
        harness.store.ensure_bucket(BUCKET)
        yield harness


@pytest.fixture
def comparisons(monkeypatch: pytest.MonkeyPatch) -> list[Comparison]:
    calls: list[Comparison] = []
    for name in SPIED:
        module: ModuleType = importlib.import_module(name)
        monkeypatch.setattr(module, "hmac", SpyHmac(name, calls))
    return calls


def compared(calls: list[Comparison], module: str, secret: str | bytes) -> bool:
    """Whether `secret` was one side of a constant-time comparison in `module`."""
    wanted = _bytes(secret)
    return any(c.module == module and wanted in (c.left, c.right) for c in calls)


def test_every_module_that_compares_secrets_is_spied() -> None:
    assert _modules_comparing_digests() == SPIED


# --- REST API ----------------------------------------------------------------------------


def test_a_wrong_admin_password_is_compared_in_constant_time(
    platform: Harness, comparisons: list[Comparison]
) -> None:
    answer = platform.client.get("/system/services", auth=(ADMIN.username, WRONG))

    assert answer.status_code == 401
    assert compared(comparisons, "oscarpy.api.auth", WRONG)
    assert compared(comparisons, "oscarpy.api.auth", ADMIN.password)


@pytest.mark.parametrize("route", ["job", "run"])
def test_a_wrong_service_token_is_compared_in_constant_time(
    platform: Harness, comparisons: list[Comparison], route: str
) -> None:
    service = platform.service(name=f"timing-{route}", script="true\n")
    other = platform.service(name=f"other-{route}", script="true\n")

    for token in (WRONG, other.token):
        answer = httpx.post(
            f"{platform.client.base_url}/{route}/{service.name}",
            headers={"Authorization": f"Bearer {token}"},
            content=b"{}",
        )
        assert answer.status_code == 401, answer.text
        assert compared(comparisons, "oscarpy.api.auth", token)
    assert compared(comparisons, "oscarpy.api.auth", service.token)


# --- S3 front-end ------------------------------------------------------------------------


def test_a_wrong_s3_signature_is_compared_in_constant_time(
    platform: Harness, comparisons: list[Comparison]
) -> None:
    url = f"{platform.s3_url}/{BUCKET}"
    headers = signed_headers("GET", url, ADMIN.username, WRONG)
    answer = httpx.get(url, headers=headers)

    assert answer.status_code == 403 and b"SignatureDoesNotMatch" in answer.content
    assert compared(comparisons, "oscarpy.s3.sigv4", signature_of(headers))


def test_an_unknown_access_key_is_compared_in_constant_time(
    platform: Harness, comparisons: list[Comparison]
) -> None:
    url = f"{platform.s3_url}/{BUCKET}"
    answer = httpx.get(url, headers=signed_headers("GET", url, "intruder", ADMIN.password))

    assert answer.status_code == 403 and b"InvalidAccessKeyId" in answer.content
    assert compared(comparisons, "oscarpy.s3.sigv4", "intruder")


def test_a_wrong_presigned_signature_is_compared_in_constant_time(
    platform: Harness, comparisons: list[Comparison]
) -> None:
    client = boto3.client(
        "s3",
        endpoint_url=platform.s3_url,
        aws_access_key_id=ADMIN.username,
        aws_secret_access_key=WRONG,
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    url = client.generate_presigned_url("get_object", {"Bucket": BUCKET, "Key": "a.txt"})
    answer = httpx.get(url)

    assert answer.status_code == 403 and b"SignatureDoesNotMatch" in answer.content
    signature = parse_qs(urlsplit(url).query)["X-Amz-Signature"][0]
    assert compared(comparisons, "oscarpy.s3.sigv4", signature)


def test_a_wrong_sigv2_header_signature_is_compared_in_constant_time(
    platform: Harness, comparisons: list[Comparison]
) -> None:
    from botocore.auth import HmacV1Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="GET", url=f"{platform.s3_url}/{BUCKET}")
    HmacV1Auth(Credentials(ADMIN.username, WRONG)).add_auth(request)
    answer = httpx.get(request.url, headers=dict(request.headers.items()))

    assert answer.status_code == 403 and b"SignatureDoesNotMatch" in answer.content
    signature = request.headers["Authorization"].rpartition(":")[2]
    assert compared(comparisons, "oscarpy.s3.sigv4", signature)


def test_an_unknown_sigv2_access_key_is_compared_in_constant_time(
    platform: Harness, comparisons: list[Comparison]
) -> None:
    from botocore.auth import HmacV1Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="GET", url=f"{platform.s3_url}/{BUCKET}")
    HmacV1Auth(Credentials("intruder-v2", ADMIN.password)).add_auth(request)
    answer = httpx.get(request.url, headers=dict(request.headers.items()))

    assert answer.status_code == 403 and b"InvalidAccessKeyId" in answer.content
    assert compared(comparisons, "oscarpy.s3.sigv4", "intruder-v2")


def test_a_wrong_sigv2_presigned_signature_is_compared_in_constant_time(
    platform: Harness, comparisons: list[Comparison]
) -> None:
    client = boto3.client(  # boto3's defaults presign with SigV2
        "s3",
        endpoint_url=platform.s3_url,
        aws_access_key_id=ADMIN.username,
        aws_secret_access_key=WRONG,
        region_name="us-east-1",
    )
    url = client.generate_presigned_url("get_object", {"Bucket": BUCKET, "Key": "a.txt"})
    answer = httpx.get(url)

    assert answer.status_code == 403 and b"SignatureDoesNotMatch" in answer.content
    signature = parse_qs(urlsplit(url).query)["Signature"][0]
    assert compared(comparisons, "oscarpy.s3.sigv4", signature)


def test_a_wrong_chunk_signature_is_compared_in_constant_time(
    platform: Harness, comparisons: list[Comparison]
) -> None:
    data = b"chunked data"
    chunk_signature = "0" * 64
    body = (
        f"{len(data):x};chunk-signature={chunk_signature}\r\n".encode()
        + data
        + f"\r\n0;chunk-signature={chunk_signature}\r\n\r\n".encode()
    )
    url = f"{platform.s3_url}/{BUCKET}/chunked.txt"
    headers = signed_headers(  # the request is signed right; only its chunks are not
        "PUT",
        url,
        ADMIN.username,
        ADMIN.password,
        headers={
            "Content-Encoding": "aws-chunked",
            "X-Amz-Decoded-Content-Length": str(len(data)),
        },
        content_sha256="STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    )
    answer = httpx.put(url, headers=headers, content=body)

    assert answer.status_code == 403 and b"SignatureDoesNotMatch" in answer.content
    assert compared(comparisons, "oscarpy.s3.sigv4", chunk_signature)
    assert platform.store.head(BUCKET, "chunked.txt") is None


# --- dashboard ---------------------------------------------------------------------------


def _dashboard(platform: Harness) -> httpx.Client:
    return httpx.Client(base_url=str(platform.client.base_url), follow_redirects=False)


def test_a_wrong_dashboard_password_is_compared_in_constant_time(
    platform: Harness, comparisons: list[Comparison]
) -> None:
    with _dashboard(platform) as browser:
        answer = browser.post("/ui/login", data={"username": ADMIN.username, "password": WRONG})

    assert answer.status_code == 401
    assert COOKIE_NAME not in answer.cookies
    assert compared(comparisons, "oscarpy.auth.sessions", WRONG)


def test_a_forged_session_cookie_is_compared_in_constant_time(
    platform: Harness, comparisons: list[Comparison]
) -> None:
    with _dashboard(platform) as browser:
        signed_in = browser.post(
            "/ui/login", data={"username": ADMIN.username, "password": ADMIN.password}
        )
        assert signed_in.status_code == 303
        payload, _, signature = signed_in.cookies[COOKIE_NAME].partition(".")
        forged = base64.urlsafe_b64encode(b"\0" * 32).rstrip(b"=").decode()
        browser.cookies.set(COOKIE_NAME, f"{payload}.{forged}")

        answer = browser.get("/ui")

    assert answer.status_code == 303 and "/ui/login" in answer.headers["location"]
    assert compared(comparisons, "oscarpy.auth.sessions", b"\0" * 32)


def test_a_wrong_csrf_token_is_compared_in_constant_time(
    platform: Harness, comparisons: list[Comparison]
) -> None:
    with _dashboard(platform) as browser:
        browser.post("/ui/login", data={"username": ADMIN.username, "password": ADMIN.password})
        assert COOKIE_NAME in browser.cookies

        from_script = browser.get("/system/services", headers={CSRF_HEADER: WRONG})
        from_form = browser.post(
            "/ui/services/import", data={"csrf_token": f"{WRONG}-form", "definition": ""}
        )

    assert from_script.status_code == 401
    assert from_form.status_code == 403
    assert compared(comparisons, "oscarpy.auth.sessions", WRONG)
    assert compared(comparisons, "oscarpy.auth.sessions", f"{WRONG}-form")


# --- dashboard sign-in through an OpenID provider ------------------------------------------

ALICE = "alice@example.org"


@pytest.fixture(scope="module")
def oidc_platform(
    tmp_path_factory: pytest.TempPathFactory, oidc_provider: OidcProvider
) -> Iterator[Harness]:
    with running_engine(
        tmp_path_factory.mktemp("timing-oidc") / "data",
        runtime=ProcessRuntime(),
        **dashboard_settings(oidc_provider),
    ) as harness:
        yield harness


def _start_oidc_sign_in(browser: httpx.Client) -> str:
    """Press "Sign in" with the first issuer: the authorization URL the browser is sent to."""
    answer = browser.get("/ui/login/oidc/0")
    assert answer.status_code == 303, answer.text
    return answer.headers["location"]


def _with_query(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    query[name] = value
    return parts._replace(query=urlencode(query)).geturl()


def _forged(genuine: str) -> str:
    """A wrong value of the genuine one's length that differs from its first character on."""
    return ("A" if genuine[0] != "A" else "B") + genuine[1:]


def test_a_wrong_sign_in_state_is_compared_in_constant_time(
    oidc_platform: Harness, oidc_provider: OidcProvider, comparisons: list[Comparison]
) -> None:
    with _dashboard(oidc_platform) as browser:
        callback = f"{browser.base_url}/ui/login/callback"
        back = oidc_provider.approve(_start_oidc_sign_in(browser), ALICE, callback)
        state = parse_qs(urlsplit(back).query)["state"][0]
        answer = browser.get(_with_query(back, "state", _forged(state)))

    assert answer.status_code == 400 and "another sign-in" in answer.text
    assert COOKIE_NAME not in answer.cookies
    assert compared(comparisons, "oscarpy.web.signin", _forged(state))
    assert compared(comparisons, "oscarpy.web.signin", state)


def test_a_wrong_id_token_nonce_is_compared_in_constant_time(
    oidc_platform: Harness, oidc_provider: OidcProvider, comparisons: list[Comparison]
) -> None:
    with _dashboard(oidc_platform) as browser:
        callback = f"{browser.base_url}/ui/login/callback"
        authorization = _start_oidc_sign_in(browser)
        nonce = parse_qs(urlsplit(authorization).query)["nonce"][0]
        # The provider signs an ID token for another nonce than the one this sign-in keeps.
        tampered = _with_query(authorization, "nonce", _forged(nonce))
        answer = browser.get(oidc_provider.approve(tampered, ALICE, callback))

    assert answer.status_code == 401 and "nonce" in answer.text
    assert COOKIE_NAME not in answer.cookies
    assert compared(comparisons, "oscarpy.auth.oidc", _forged(nonce))
    assert compared(comparisons, "oscarpy.auth.oidc", nonce)
