"""Dashboard sessions and S3 signatures against a hostile copy of a request.

- Signing out ends a session everywhere: after a restart, and in every server process on the
  same state DB (a copied cookie is refused).
- The cookie's key is a random secret of the installation, not derived from the password alone:
  knowing or guessing the password mints no cookie, and a cookie tests no password guess.
- Cookies are `Secure` behind HTTPS.
- A SigV4 signature must cover `Host`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from oscarpy.auth.sessions import COOKIE_NAME
from tests.conftest import require_service
from tests.support.dashboard import sign_in
from tests.support.databases import fresh_postgres_database, postgres_reachable
from tests.support.server import RunningServer, start_server


def _signed_in(server: RunningServer) -> tuple[httpx.Client, str, str]:
    """A browser signed in to `server`, its CSRF token and its session cookie."""
    browser = httpx.Client(base_url=server.url, timeout=30)
    token = sign_in(browser, server)
    return browser, token, browser.cookies[COOKIE_NAME]


def _opens(server: RunningServer, cookie: str) -> bool:
    with httpx.Client(base_url=server.url, timeout=30, cookies={COOKIE_NAME: cookie}) as thief:
        return thief.get("/ui/services").status_code == 200


def test_a_signed_out_cookie_stays_refused_after_a_restart(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", env={"OSCAR_RUNTIME": "process"})
    browser, token, cookie = _signed_in(server)
    assert _opens(server, cookie)
    assert browser.post("/ui/logout", data={"csrf_token": token}).status_code == 303
    browser.close()
    assert not _opens(server, cookie)
    server.stop()
    server = start_server(tmp_path / "data", env={"OSCAR_RUNTIME": "process"})
    try:
        assert not _opens(server, cookie)
        again, _token, fresh = _signed_in(server)  # signing in still works
        again.close()
        assert _opens(server, fresh)
    finally:
        server.stop()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    reachable, reason = postgres_reachable()
    require_service(reachable, reason)
    with fresh_postgres_database() as url:
        yield url


def test_signing_out_reaches_every_process_on_the_state_db(
    tmp_path: Path, postgres_url: str
) -> None:
    env = {"OSCAR_RUNTIME": "process", "OSCAR_DATABASE_URL": postgres_url}
    first = start_server(tmp_path / "data", env=env)
    second = start_server(tmp_path / "data", env=env)
    try:
        browser, token, cookie = _signed_in(first)
        assert _opens(second, cookie)
        assert browser.post("/ui/logout", data={"csrf_token": token}).status_code == 303
        browser.close()
        assert not _opens(second, cookie)
        assert not _opens(first, cookie)
    finally:
        second.stop()
        first.stop()


def _old_style_cookie(password: str, username: str) -> str:
    """A cookie signed with a key derived from the password only, as the code before did."""
    key = hmac.new(password.encode(), b"oscar-py dashboard session v1", hashlib.sha256).digest()
    payload = json.dumps(
        {"u": username, "s": "forged", "c": "csrf", "e": time.time() + 3600},
        separators=(",", ":"),
    ).encode()
    signature = hmac.new(key, payload, hashlib.sha256).digest()

    def encode(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return f"{encode(payload)}.{encode(signature)}"


def test_the_password_alone_mints_no_cookie(process_server: RunningServer) -> None:
    forged = _old_style_cookie(process_server.password, process_server.username)
    assert not _opens(process_server, forged)
    secret = process_server.data_dir / "session-secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert process_server.password not in secret.read_text()


def test_cookies_are_secure_behind_https(process_server: RunningServer, tmp_path: Path) -> None:
    form = {"username": process_server.username, "password": process_server.password}
    plain = httpx.post(f"{process_server.url}/ui/login", data=form)
    proxied = httpx.post(
        f"{process_server.url}/ui/login", data=form, headers={"X-Forwarded-Proto": "https"}
    )
    assert "secure" not in plain.headers["set-cookie"].lower()
    assert "; secure" in proxied.headers["set-cookie"].lower()
    always = start_server(tmp_path / "data", env={"OSCAR_SECURE_COOKIE": "always"})
    try:
        answer = httpx.post(f"{always.url}/ui/login", data=form | {"password": always.password})
        assert "; secure" in answer.headers["set-cookie"].lower()
    finally:
        always.stop()


class _HostlessSigner(S3SigV4Auth):  # type: ignore[misc]
    """botocore's signer, leaving `Host` out of the signed headers."""

    def headers_to_sign(self, request: AWSRequest) -> object:
        headers = super().headers_to_sign(request)
        del headers["host"]
        return headers


def test_a_sigv4_signature_must_cover_the_host(process_server: RunningServer) -> None:
    url = f"{process_server.s3_url}/"
    request = AWSRequest(method="GET", url=url)
    credentials = Credentials(process_server.username, process_server.password)
    _HostlessSigner(credentials, "s3", "us-east-1").add_auth(request)
    headers = dict(request.headers.items())
    assert "host" not in headers["Authorization"].split("SignedHeaders=")[1].split(",")[0]
    answer = httpx.get(url, headers=headers, timeout=10)
    assert answer.status_code == 403, answer.text
    assert "host" in answer.text
    assert process_server.s3_client().list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200
