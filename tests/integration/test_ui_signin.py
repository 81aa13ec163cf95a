"""Signing in to the dashboard through a real OpenID provider (authorization code with PKCE),
and what the signed-in user then sees; the callback's refusals (state, code, nonce, group).

Called in-process at http://127.0.0.1:9 (the provider's `oscar-dashboard` client accepts a
loopback redirect URI on any port); every token comes from the provider (tests/support/oidc.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest

from oscarpy.auth.sessions import SessionCodec
from tests.support.inprocess import InProcessServer, SyncASGITransport, in_process_server
from tests.support.oidc import OidcProvider, dashboard_settings, oidc_provider

__all__ = ["oidc_provider"]

DASHBOARD_URL = "http://127.0.0.1:9"
CALLBACK = f"{DASHBOARD_URL}/ui/login/callback"
ALICE, BOB, MALLORY = "alice@example.org", "bob@example.org", "mallory@example.org"


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, oidc_provider: OidcProvider
) -> Iterator[InProcessServer]:
    with in_process_server(
        tmp_path_factory.mktemp("ui-signin") / "data", **dashboard_settings(oidc_provider)
    ) as running:
        for user in (ALICE, BOB):
            token = oidc_provider.sign_in(user).access_token
            with running.client(
                authenticated=False, headers={"Authorization": f"Bearer {token}"}
            ) as client:
                name = f"{user.split('@')[0]}-service"
                created = client.post(
                    "/system/services",
                    json={
                        "name": name,
                        "image": "oscar-test/busybox:latest",
                        "script": "true",
                        "input": [{"storage_provider": "minio.default", "path": f"{name}/in"}],
                    },
                )
                assert created.status_code == 201, created.text
        yield running


def browser(api: InProcessServer) -> httpx.Client:
    """A cookie-keeping client of the dashboard, as a browser at `DASHBOARD_URL` would be."""
    return httpx.Client(
        transport=SyncASGITransport(api.platform.api_app, api.portal), base_url=DASHBOARD_URL
    )


def start(client: httpx.Client) -> str:
    """Press "Sign in with <issuer>": the authorization URL the dashboard sends the browser to."""
    page = client.get("/ui/login")
    link = re.search(r'href="(/ui/login/oidc/0[^"]*)"[^>]*>Sign in with 127\.0\.0\.1', page.text)
    assert link is not None, page.text
    answer = client.get(link.group(1).replace("&amp;", "&"))
    assert answer.status_code == 303
    return answer.headers["location"]


def approve(provider: OidcProvider, authorization_url: str, login: str) -> str:
    """The provider's side: its sign-in form submitted for `login`; the callback URL it sends
    the browser back to."""
    return provider.approve(authorization_url, login, CALLBACK)


def signed_in(answer: httpx.Response) -> bool:
    return "oscar_session=" in "".join(answer.headers.get_list("set-cookie"))


def test_a_user_signs_in_and_sees_their_own_services_only(
    api: InProcessServer, oidc_provider: OidcProvider
) -> None:
    with browser(api) as client:
        back = approve(oidc_provider, start(client), ALICE)
        answer = client.get(back)
        assert answer.status_code == 200 and signed_in(answer)
        assert 'http-equiv="refresh"' in answer.text

        services = client.get("/ui/services")
        assert services.status_code == 200
        assert "alice-service" in services.text and "bob-service" not in services.text
        assert client.get("/ui/services/bob-service").status_code == 403
        assert "bob-service" not in client.get("/ui/data/services").text
        assert client.get("/ui/services/alice-service").status_code == 200
        storage = client.get("/ui/storage")
        assert "alice-service" in storage.text and "bob-service" not in storage.text
        assert client.get("/ui/storage/bob-service").status_code == 403
        assert client.get("/ui/storage/alice-service").status_code == 200

        # The dashboard's own API calls act as alice too: the cookie and its CSRF header.
        csrf = re.search(r'data-csrf="([^"]+)"', services.text)
        assert csrf is not None
        listed = client.get("/system/services", headers={"X-CSRF-Token": csrf.group(1)})
        assert [service["name"] for service in listed.json()] == ["alice-service"]
        headers = {"X-CSRF-Token": csrf.group(1)}
        logs = client.get("/system/logs", headers=headers)
        assert logs.status_code == 403  # the admins' only
        assert client.post("/run/bob-service", headers=headers, content=b"{}").status_code == 403
        deleting = client.post("/ui/services/bob-service/delete", data={"csrf_token": csrf[1]})
        assert deleting.status_code == 403
        assert api.platform.registry.get("bob-service") is not None


def test_a_user_outside_the_required_group_is_refused(
    api: InProcessServer, oidc_provider: OidcProvider
) -> None:
    with browser(api) as client:
        answer = client.get(approve(oidc_provider, start(client), MALLORY))
        assert answer.status_code == 403
        assert "not in any group allowed" in answer.text
        assert not signed_in(answer)
        assert client.get("/ui/services").status_code == 303


def test_an_answer_for_another_state_is_refused(
    api: InProcessServer, oidc_provider: OidcProvider
) -> None:
    with browser(api) as client:
        back = approve(oidc_provider, start(client), ALICE)
        forged = re.sub(r"state=[^&]+", "state=someone-elses", back)
        answer = client.get(forged)
        assert answer.status_code == 400 and not signed_in(answer)
        assert "another sign-in" in answer.text
        # The state cookie was spent: the genuine answer, now, is refused as well.
        assert client.get(back).status_code == 400


def test_a_replayed_code_is_refused(api: InProcessServer, oidc_provider: OidcProvider) -> None:
    with browser(api) as client:
        authorization = start(client)
        state_cookie = client.cookies["oscar_oidc"]
        back = approve(oidc_provider, authorization, ALICE)
        assert signed_in(client.get(back))
    with browser(api) as attacker:
        attacker.cookies.set("oscar_oidc", state_cookie, domain="127.0.0.1", path="/ui/login")
        answer = attacker.get(back)
        assert answer.status_code == 401 and not signed_in(answer)
        assert attacker.get("/ui/services").status_code == 303


def test_an_id_token_for_another_nonce_is_refused(
    api: InProcessServer, oidc_provider: OidcProvider
) -> None:
    codec: SessionCodec = api.platform.api_app.state.sessions  # type: ignore[attr-defined]
    with browser(api) as client:
        authorization = start(client)
        state = json.loads(codec.unseal(client.cookies["oscar_oidc"]) or b"{}")
        state["nonce"] = "not-the-nonce-the-issuer-saw"
        client.cookies.set(
            "oscar_oidc",
            codec.seal(json.dumps(state).encode()),
            domain="127.0.0.1",
            path="/ui/login",
        )
        answer = client.get(approve(oidc_provider, authorization, ALICE))
        assert answer.status_code == 401 and not signed_in(answer)
        assert "nonce" in answer.text
