"""The dashboard's session and CSRF protection, and its error answers, called in-process.

Browsers are not needed to show these: what matters is what the server answers to a request
without a session, with a forged or stale one, or without the CSRF token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.inprocess import InProcessServer, in_process_server

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory, docker_client: object
) -> Iterator[InProcessServer]:
    with in_process_server(tmp_path_factory.mktemp("ui-session") / "data") as running:
        yield running


def anonymous(platform: InProcessServer, **options: Any) -> httpx.Client:
    """A client without credentials (a browser that has not signed in, or holds `cookies`)."""
    return platform.client(authenticated=False, **options)


@pytest.fixture
def signed_in(platform: InProcessServer) -> Iterator[tuple[httpx.Client, str]]:
    """A client holding a dashboard session, and that session's CSRF token."""
    with anonymous(platform) as client:
        yield _sign_in(client, platform)


def _sign_in(client: httpx.Client, platform: InProcessServer) -> tuple[httpx.Client, str]:
    answer = client.post(
        "/ui/login", data={"username": platform.username, "password": platform.password}
    )
    assert answer.status_code == 303
    page = client.get("/ui/services")
    match = re.search(r'data-csrf="([^"]+)"', page.text)
    assert match is not None
    return client, match.group(1)


def test_the_session_cookie_is_http_only_strict_and_signed(platform: InProcessServer) -> None:
    answer = anonymous(platform).post(
        "/ui/login", data={"username": platform.username, "password": platform.password}
    )
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("oscar_session=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/;" in cookie
    assert platform.password not in cookie

    value = cookie.split(";")[0].split("=", 1)[1]
    payload, _, signature = value.partition(".")
    forged = f"{payload[:-2]}AA.{signature}"
    for bad in (forged, f"{payload}.{signature[:-2]}AA", "garbage"):
        page = anonymous(platform, cookies={"oscar_session": bad}).get("/ui/services")
        assert page.status_code == 303
        assert page.headers["location"] == "/ui/login?next=/ui/services"


def test_a_wrong_password_is_refused_and_sets_no_cookie(platform: InProcessServer) -> None:
    answer = anonymous(platform).post(
        "/ui/login", data={"username": platform.username, "password": "nope"}
    )
    assert answer.status_code == 401
    assert "Wrong user or password." in answer.text
    assert "oscar_session" not in answer.headers.get("set-cookie", "")


def test_a_form_without_the_csrf_token_changes_nothing(
    platform: InProcessServer, signed_in: tuple[httpx.Client, str]
) -> None:
    client, token = signed_in
    form = {"name": "csrf-victim", "image": "busybox", "script": "echo", "cpu": "0.1"}
    refused = client.post("/ui/services/new", data=form)
    assert refused.status_code == 403
    assert "did not come from this dashboard" in refused.text
    wrong = client.post("/ui/services/new", data={**form, "csrf_token": token[::-1]})
    assert wrong.status_code == 403
    with platform.client() as api:
        assert api.get("/system/services/csrf-victim").status_code == 404

    accepted = client.post("/ui/services/new", data={**form, "csrf_token": token})
    assert (accepted.status_code, accepted.headers["location"]) == (303, "/ui/services/csrf-victim")
    with platform.client() as api:
        assert api.get("/system/services/csrf-victim").status_code == 200
        api.delete("/system/services/csrf-victim")


def test_rest_routes_take_the_session_only_with_its_csrf_header(
    platform: InProcessServer, signed_in: tuple[httpx.Client, str]
) -> None:
    client, token = signed_in
    assert client.get("/system/services").status_code == 401
    assert client.get("/system/services", headers={"X-CSRF-Token": "forged"}).status_code == 401
    assert client.get("/system/services", headers={"X-CSRF-Token": token}).status_code == 200
    # Another client with the header but without the cookie gets nothing either.
    stranger = anonymous(platform).get("/system/services", headers={"X-CSRF-Token": token})
    assert stranger.status_code == 401


def test_signing_out_revokes_even_a_copied_cookie(
    platform: InProcessServer, signed_in: tuple[httpx.Client, str]
) -> None:
    client, token = signed_in
    copied = dict(client.cookies)
    answer = client.post("/ui/logout", data={"csrf_token": token})
    assert (answer.status_code, answer.headers["location"]) == (303, "/ui/login")
    again = anonymous(platform, cookies=copied).get("/ui/services")
    assert again.status_code == 303 and again.headers["location"].startswith("/ui/login")
    rest = anonymous(platform, cookies=copied).get(
        "/system/services", headers={"X-CSRF-Token": token}
    )
    assert rest.status_code == 401


def test_sign_in_sends_only_to_dashboard_pages(platform: InProcessServer) -> None:
    for target, expected in [
        ("/ui/storage", "/ui/storage"),
        ("https://elsewhere.example/", "/ui"),
        ("//elsewhere.example/ui", "/ui"),
        ("/system/services", "/ui"),
    ]:
        answer = anonymous(platform).post(
            "/ui/login",
            data={"username": platform.username, "password": platform.password, "next": target},
        )
        assert answer.headers["location"] == expected, target


def test_without_a_session_pages_redirect_and_scripts_get_a_readable_401(
    platform: InProcessServer,
) -> None:
    page = anonymous(platform).get("/ui/storage/some-bucket?prefix=a/")
    assert page.status_code == 303
    assert page.headers["location"] == "/ui/login?next=/ui/storage/some-bucket%3Fprefix%3Da/"
    data = anonymous(platform).get("/ui/data/services")
    assert data.status_code == 401
    assert data.json() == {"detail": "Sign in again: your session ended."}


def test_errors_are_readable_pages_or_json(
    platform: InProcessServer, signed_in: tuple[httpx.Client, str]
) -> None:
    client, token = signed_in
    missing = client.get("/ui/services/no-such-service")
    assert missing.status_code == 404
    assert "text/html" in missing.headers["content-type"]
    assert "There is no service named no-such-service." in missing.text

    bad_definition = client.post(
        "/ui/services/import",
        data={"csrf_token": token},
        files={"definition": ("bad.json", json.dumps({"name": "Bad Name", "image": "x"}))},
    )
    assert bad_definition.status_code == 400
    assert "bad.json" in bad_definition.text and "name" in bad_definition.text
    assert "Traceback" not in bad_definition.text

    upload = client.put(
        "/ui/storage/no-such-bucket/objects",
        params={"key": "a.txt"},
        content=b"data",
        headers={"X-CSRF-Token": token, "Accept": "application/json"},
    )
    assert upload.status_code == 404
    assert upload.json() == {"detail": "There is no bucket named no-such-bucket."}

    bad_bucket = client.post("/ui/storage", data={"csrf_token": token, "name": "No_Good"})
    assert bad_bucket.status_code == 400
    assert "invalid bucket name" in bad_bucket.text.lower()


def test_storage_forms_work_without_the_script(
    platform: InProcessServer, signed_in: tuple[httpx.Client, str]
) -> None:
    client, token = signed_in
    created = client.post("/ui/storage", data={"csrf_token": token, "name": "plain-forms"})
    assert (created.status_code, created.headers["location"]) == (303, "/ui/storage/plain-forms")
    folder = client.post(
        "/ui/storage/plain-forms/folders",
        data={"csrf_token": token, "prefix": "", "name": "reports/2026"},
    )
    assert folder.headers["location"] == "/ui/storage/plain-forms?prefix=reports/2026/"
    uploaded = client.post(
        "/ui/storage/plain-forms/upload",
        data={"csrf_token": token, "prefix": "reports/2026/"},
        files=[
            ("files", ("a.txt", b"first", "text/plain")),
            ("files", ("b.bin", bytes(range(256)), "application/octet-stream")),
        ],
    )
    assert uploaded.status_code == 303
    listing = client.get("/ui/storage/plain-forms", params={"prefix": "reports/2026/"})
    assert "a.txt" in listing.text and "b.bin" in listing.text
    binary = client.get("/ui/storage/plain-forms/object", params={"key": "reports/2026/b.bin"})
    assert binary.content == bytes(range(256))
    assert binary.headers["content-disposition"] == "attachment; filename*=UTF-8''b.bin"

    deleted = client.post(
        "/ui/storage/plain-forms/object/delete",
        data={"csrf_token": token, "key": "reports/2026/a.txt"},
    )
    assert deleted.headers["location"] == "/ui/storage/plain-forms?prefix=reports/2026/"
    gone = client.get("/ui/storage/plain-forms/object", params={"key": "reports/2026/a.txt"})
    assert gone.status_code == 404 and "not found" in gone.text

    not_empty = client.post("/ui/storage/plain-forms/delete", data={"csrf_token": token})
    assert not_empty.status_code == 409 and "not empty" in not_empty.text
    forced = client.post(
        "/ui/storage/plain-forms/delete", data={"csrf_token": token, "force": "on"}
    )
    assert forced.headers["location"] == "/ui/storage"
    assert client.get("/ui/storage/plain-forms").status_code == 404


def test_an_imported_definition_shows_what_is_dropped_or_not_honoured(
    platform: InProcessServer, signed_in: tuple[httpx.Client, str]
) -> None:
    client, token = signed_in
    definition = {
        "name": "ui-warned",
        "image": "busybox",
        "script": "echo",
        "memroy": "1Gi",
        "kserve": {"type": "inference", "storage_uri": "hf://model"},
    }
    imported = client.post(
        "/ui/services/import",
        data={"csrf_token": token},
        files={"definition": ("warned.json", json.dumps(definition))},
        follow_redirects=True,
    )
    assert imported.status_code == 200, imported.text
    flash = re.search(r'<p class="message warning"[^>]*>([^<]+)</p>', imported.text)
    assert flash is not None, imported.text
    assert "memroy: unknown key, ignored" in flash.group(1)
    assert "kserve: not supported by oscar-py" in flash.group(1)
    # The service's page keeps showing what is stored but not honoured.
    page = client.get("/ui/services/ui-warned").text
    assert "Not honoured" in page and "KServe inference services need Kubernetes" in page
    with platform.client() as api:
        assert api.delete("/system/services/ui-warned").status_code == 204
