"""CSRF on the REST API: a browser that holds the admin's Basic credentials sends them with
any request a hostile page makes, and a `text/plain` POST needs no CORS preflight. State
changes that the browser marks as cross-site (`Sec-Fetch-Site`, `Origin`) are refused with 403,
and service definitions must be declared JSON (or carry no type, as oscar-cli sends them);
OSCAR's own clients keep working."""

from __future__ import annotations

import json

import pytest

from tests.support.server import RunningServer

EVIL = "http://evil.example"


def _definition(name: str) -> dict[str, object]:
    return {"name": name, "image": "unused", "script": "echo hi\n"}


def _exists(server: RunningServer, name: str) -> bool:
    with server.client() as client:
        return client.get(f"/system/services/{name}").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": EVIL, "Content-Type": "text/plain"},  # plain HTTP: no Sec-Fetch-* headers
        {"Origin": EVIL, "Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"},
        {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"},  # a Blob body without a type
        {"Sec-Fetch-Site": "same-site", "Content-Type": "text/plain"},
        {"Origin": "null", "Content-Type": "text/plain"},  # a sandboxed frame
    ],
)
def test_a_cross_site_post_with_cached_credentials_creates_nothing(
    process_server: RunningServer, headers: dict[str, str]
) -> None:
    with process_server.client() as browser:
        answer = browser.post(
            "/system/services", content=json.dumps(_definition("csrf")), headers=headers
        )
    assert answer.status_code == 403, answer.text
    assert not _exists(process_server, "csrf")


def test_cross_site_updates_and_deletes_are_refused(process_server: RunningServer) -> None:
    process_server.create_service(_definition("kept"))
    with process_server.client() as browser:
        cross = {"Origin": EVIL, "Content-Type": "text/plain"}
        changed = {**_definition("kept"), "script": "evil\n"}
        updated = browser.put("/system/services", content=json.dumps(changed), headers=cross)
        deleted = browser.delete("/system/services/kept", headers={"Origin": EVIL})
        assert (updated.status_code, deleted.status_code) == (403, 403)
        assert browser.get("/system/services/kept").json()["script"] == "echo hi\n"


def test_a_definition_not_declared_json_is_refused(process_server: RunningServer) -> None:
    with process_server.client() as client:
        for media in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
            answer = client.post(
                "/system/services",
                content=json.dumps(_definition("typed")),
                headers={"Content-Type": media},
            )
            assert answer.status_code == 415, answer.text
    assert not _exists(process_server, "typed")


def test_own_clients_and_same_origin_browsers_still_work(process_server: RunningServer) -> None:
    with process_server.client() as client:
        # oscar-cli (Go) sends the JSON with no Content-Type and no Origin.
        untyped = client.post("/system/services", content=json.dumps(_definition("from-cli")))
        # oscar_python (requests' json=) and the dashboard's own script (same origin).
        typed = client.post("/system/services", json=_definition("from-python"))
        host = process_server.url.removeprefix("http://")
        same = client.post(
            "/system/services",
            json=_definition("from-page"),
            headers={"Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"},
        )
        plain_http_page = client.delete(
            "/system/services/from-page", headers={"Origin": f"http://{host}"}
        )
    assert [untyped.status_code, typed.status_code, same.status_code] == [201, 201, 201]
    assert plain_http_page.status_code == 204
