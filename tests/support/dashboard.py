"""Signing in to a real server's dashboard the way a browser does."""

from __future__ import annotations

import re

import httpx

from tests.support.server import RunningServer


def sign_in(client: httpx.Client, server: RunningServer) -> str:
    """Sign `client` in to `server`'s dashboard; the session's CSRF token."""
    answer = client.post(
        "/ui/login", data={"username": server.username, "password": server.password}
    )
    assert answer.status_code == 303, answer.text
    page = client.get("/ui/services")
    match = re.search(r'data-csrf="([^"]+)"', page.text)
    assert match is not None, page.text
    return match.group(1)
