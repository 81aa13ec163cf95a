"""A person signs in to the dashboard through a real OpenID provider, in Chromium: the
dashboard's "Sign in with <issuer>" link, the provider's own sign-in form, and back; they see
their own service and not another user's. A user outside the required group is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.browser import DESKTOP, screenshot
from tests.support.oidc import GROUP, OidcProvider, oidc_provider
from tests.support.server import RunningServer, start_server

__all__ = ["oidc_provider"]

ALICE, BOB, MALLORY = "alice@example.org", "bob@example.org", "mallory@example.org"


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory, oidc_provider: OidcProvider
) -> Iterator[RunningServer]:
    running = start_server(
        tmp_path_factory.mktemp("ui-oidc") / "data",
        env={
            "OSCAR_OIDC_ISSUERS": oidc_provider.issuer,
            "OSCAR_OIDC_GROUPS": GROUP,
            "OSCAR_OIDC_CLIENT_ID": "oscar-dashboard",
            "OSCAR_OIDC_CLIENT_SECRET": "oscar-dashboard-secret",
        },
    )
    try:
        for user in (ALICE, BOB):
            token = oidc_provider.sign_in(user).access_token
            created = httpx.post(
                f"{running.url}/system/services",
                headers={"Authorization": f"Bearer {token}"},
                json={
                    "name": f"{user.split('@')[0]}-service",
                    "image": "oscar-test/busybox:latest",
                    "script": "true",
                },
            )
            assert created.status_code == 201, created.text
        yield running
    finally:
        running.stop()


def sign_in_at_issuer(page: Any, platform: RunningServer, login: str) -> None:
    page.goto(f"{platform.url}/ui")
    page.get_by_role("link", name=re.compile(r"^Sign in with 127\.0\.0\.1:\d+$")).click()
    page.get_by_label("Account").fill(login)
    page.get_by_role("button", name="Sign in").click()


def test_a_user_signs_in_through_the_issuer_and_sees_their_own_service(
    platform: RunningServer, browser: Any
) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    sign_in_at_issuer(page, platform, ALICE)
    expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()
    expect(page.locator(".who")).to_have_text("Alice")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Services").click()
    expect(page.get_by_role("link", name="alice-service", exact=True)).to_be_visible()
    expect(page.get_by_text("bob-service")).to_have_count(0)
    screenshot(page, "oidc-user-services")
    page.goto(f"{platform.url}/ui/services/bob-service")
    expect(page.get_by_role("heading", name="Refused")).to_be_visible()

    page.goto(f"{platform.url}/ui")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    page.goto(f"{platform.url}/ui/services")
    expect(page).to_have_url(re.compile(r"/ui/login\?next=/ui/services$"))
    context.close()


def test_a_user_outside_the_required_group_is_refused(
    platform: RunningServer, browser: Any
) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    sign_in_at_issuer(page, platform, MALLORY)
    expect(page.get_by_role("alert")).to_contain_text("not in any group allowed")
    screenshot(page, "oidc-user-refused")
    page.goto(f"{platform.url}/ui/services")
    expect(page).to_have_url(re.compile(r"/ui/login\?next=/ui/services$"))
    context.close()
