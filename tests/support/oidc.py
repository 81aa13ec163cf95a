"""A real OpenID provider for the tests: npm `oidc-provider` on Node.js (tests/support/oidc/).

`OidcProvider.start(accounts)` runs `provider.mjs` on a free port of 127.0.0.1 (about half a
second) and `sign_in(subject)` drives the authorization code flow with PKCE as a browser would,
returning the provider's own access and refresh tokens; `refresh()` uses the token endpoint.
Nothing here signs a token: every token comes from the provider.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import require_service

PROVIDER_DIR = Path(__file__).parent / "oidc"
REDIRECT_URI = "http://127.0.0.1/callback"
#: The group an EGI entitlement names, and such an entitlement.
GROUP = "vo.oscar.test"
ENTITLEMENT = f"urn:mace:egi.eu:group:{GROUP}:role=member#aai.egi.eu"


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str


class OidcProvider:
    def __init__(self, process: subprocess.Popen[str], issuer: str, workdir: Path) -> None:
        self.process = process
        self.issuer = issuer
        self.workdir = workdir
        self.http = httpx.Client(base_url=issuer, timeout=10)

    @classmethod
    def start(cls, accounts: dict[str, dict[str, Any]]) -> OidcProvider:
        """A provider whose accounts are `accounts` (subject → claims); skips (fails in CI)
        without Node.js or the npm packages (`scripts/test` installs them)."""
        node = shutil.which("node")
        installed = (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir()
        require_service(
            node is not None and installed,
            "Node.js and tests/support/oidc/node_modules (npm ci) are needed",
        )
        assert node is not None
        workdir = Path(tempfile.mkdtemp(prefix="oscar-oidc-"))
        (workdir / "accounts.json").write_text(json.dumps(accounts))
        process = subprocess.Popen(
            [node, str(PROVIDER_DIR / "provider.mjs"), str(workdir / "accounts.json")],
            cwd=PROVIDER_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("READY "):
            process.kill()
            process.wait()
            process.stdout.close()
            raise RuntimeError(f"the OpenID provider did not start: {line!r}")
        return cls(process, line.split()[1], workdir)

    def stop(self) -> None:
        self.http.close()
        self.process.terminate()
        self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    def sign_in(self, subject: str, client_id: str = "oscar-test") -> Tokens:
        """The authorization code flow with PKCE for `subject`, as a browser follows it."""
        verifier = secrets.token_urlsafe(48)
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        browser = httpx.Client(base_url=self.issuer, timeout=10)
        with browser:
            answer = browser.get(
                "/auth",
                params={
                    "client_id": client_id,
                    "redirect_uri": REDIRECT_URI,
                    "response_type": "code",
                    "scope": "openid offline_access profile",
                    "prompt": "consent",
                    "login_hint": subject,
                    "code_challenge": challenge,
                    "code_challenge_method": "S256",
                },
            )
            for _ in range(10):
                location = answer.headers.get("location", "")
                if location.startswith(REDIRECT_URI):
                    break
                assert answer.status_code in (302, 303), answer.text
                answer = browser.get(location)
            query = parse_qs(urlsplit(answer.headers["location"]).query)
            assert "code" in query, query
        token = self.http.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": query["code"][0],
                "redirect_uri": REDIRECT_URI,
                "client_id": client_id,
                "code_verifier": verifier,
            },
        )
        token.raise_for_status()
        body = token.json()
        return Tokens(body["access_token"], body.get("refresh_token", ""))

    def approve(self, authorization_url: str, login: str, callback: str) -> str:
        """A browser at the provider: `authorization_url` followed and its sign-in form
        submitted for `login`; the URL under `callback` it is sent back to."""
        query = parse_qs(urlsplit(authorization_url).query)
        assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
        assert query["state"][0] and query["nonce"][0]
        with httpx.Client(timeout=10) as at_issuer:
            answer = at_issuer.get(authorization_url)
            for _ in range(10):
                location = str(answer.headers.get("location", ""))
                if location.startswith(callback):
                    return location
                if answer.status_code == 200 and 'name="login"' in answer.text:
                    answer = at_issuer.post(str(answer.url), data={"login": login})
                    continue
                assert answer.status_code in (302, 303), answer.text
                answer = at_issuer.get(httpx.URL(str(answer.url)).join(location))
        raise AssertionError(f"the provider never redirected back to {callback}")

    def refresh(self, refresh_token: str, client_id: str = "oscar-test") -> Tokens:
        answer = self.http.post(
            "/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": client_id,
            },
        )
        answer.raise_for_status()
        body = answer.json()
        return Tokens(body["access_token"], body.get("refresh_token", refresh_token))


def dashboard_settings(provider: OidcProvider) -> dict[str, str]:
    """Settings of a server whose dashboard signs in through `provider`, as its confidential
    client `oscar-dashboard`, for the users of `GROUP`."""
    return {
        "oidc_issuers": provider.issuer,
        "oidc_groups": GROUP,
        "oidc_client_id": "oscar-dashboard",
        "oidc_client_secret": "oscar-dashboard-secret",
    }


def wait_until_expired(token: str) -> None:
    """Poll the clock until `token`'s `exp` (read, not checked) has passed."""
    payload = token.split(".")[1]
    exp = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"]
    while int(time.time()) <= exp:  # clients compare whole seconds
        time.sleep(0.05)


@pytest.fixture(scope="module")
def oidc_provider() -> Iterator[OidcProvider]:
    """One provider per test module, with its test users: `alice`, `bob`, `carol` and `dave`
    in the group `GROUP` (by an EGI entitlement), `mallory` in none."""
    provider = OidcProvider.start(
        {
            "alice@example.org": {"name": "Alice", "eduperson_entitlement": [ENTITLEMENT]},
            "bob@example.org": {"name": "Bob", "eduperson_entitlement": [ENTITLEMENT]},
            "carol@example.org": {"name": "Carol", "eduperson_entitlement": [ENTITLEMENT]},
            "dave@example.org": {"name": "Dave", "eduperson_entitlement": [ENTITLEMENT]},
            "mallory@example.org": {"name": "Mallory", "eduperson_entitlement": []},
        }
    )
    yield provider
    provider.stop()
