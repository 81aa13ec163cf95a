"""The interactive API pages load Swagger UI and ReDoc from a CDN: a script from a third party
would run on the server's origin, where the browser holds the admin's credentials. They are off
by default (`OSCAR_API_DOCS`) and, like the OpenAPI document, served to the admin only."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.server import RunningServer, start_server


def test_the_api_pages_are_off_and_the_document_is_for_the_admin(
    process_server: RunningServer,
) -> None:
    anonymous = httpx.Client(base_url=process_server.url, timeout=10)
    with anonymous, process_server.client() as admin:
        assert anonymous.get("/openapi.json").status_code == 401
        assert admin.get("/openapi.json").json()["info"]["title"] == "oscar-py"
        for page in ("/docs", "/redoc", "/docs/oauth2-redirect"):
            assert anonymous.get(page).status_code in (401, 404)
            assert admin.get(page).status_code == 404


def test_the_api_pages_when_enabled_are_for_the_admin_only(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", env={"OSCAR_API_DOCS": "true"})
    try:
        with httpx.Client(base_url=server.url, timeout=10) as anonymous, server.client() as admin:
            for page in ("/docs", "/redoc"):
                assert anonymous.get(page).status_code == 401
                shown = admin.get(page)
                assert shown.status_code == 200 and "/openapi.json" in shown.text
    finally:
        server.stop()
