"""Signing in to the dashboard through an OpenID Connect issuer (authorization code with PKCE).

`/ui/login/oidc/{n}` sends the browser to the authorization endpoint of the n-th trusted issuer
(OSCAR_OIDC_ISSUERS) with a PKCE S256 challenge, a `state` and a `nonce`; all three are kept
in a short-lived signed cookie (`SameSite=Lax`: the issuer's redirect back is a cross-site
navigation, which a `Strict` cookie would not follow). `/ui/login/callback` checks the state,
exchanges the code at the token endpoint, checks the ID token (signature, issuer, audience,
nonce) and the access token with the same rules as the REST API's bearer tokens (groups
included), then starts a dashboard session that carries the user. The state cookie is spent on
the first callback, whatever its outcome; a replayed code is refused by the issuer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from oscarpy.auth.oidc import OidcVerifier, TokenRefused
from oscarpy.auth.principal import Principal
from oscarpy.auth.users import SubjectRefused, Users, principal_of_user
from oscarpy.config import Settings
from oscarpy.web.dashboard import (
    PREFIX,
    DashboardError,
    DashboardRoute,
    render,
    safe_next,
    sessions,
)

router = APIRouter(prefix=f"{PREFIX}/login", route_class=DashboardRoute, include_in_schema=False)

STATE_COOKIE = "oscar_oidc"
STATE_SECONDS = 600
SCOPE = "openid profile"


@dataclass(frozen=True)
class Issuer:
    """A trusted issuer the sign-in page offers."""

    index: int
    url: str

    @property
    def label(self) -> str:
        parts = urlsplit(self.url)
        return (parts.netloc + parts.path).rstrip("/")


def issuers(request: Request) -> list[Issuer]:
    """The issuers the dashboard signs in through: none without a client id or a verifier."""
    settings: Settings = request.app.state.settings
    if not settings.oidc_client_id or _verifier_or_none(request) is None:
        return []
    return [Issuer(index, url) for index, url in enumerate(settings.oidc_issuer_list)]


def _verifier_or_none(request: Request) -> OidcVerifier | None:
    return getattr(request.app.state, "oidc", None)


def _callback_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + f"{PREFIX}/login/callback"


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@router.get("/oidc/{index}")
async def start(request: Request, index: int, next: str = PREFIX) -> Response:
    offered = issuers(request)
    if not 0 <= index < len(offered):
        raise DashboardError("This dashboard signs in through no such issuer.", 404)
    issuer = offered[index]
    verifier = _verifier_or_none(request)
    assert verifier is not None
    try:
        metadata = await run_in_threadpool(verifier.discovery, issuer.url)
    except TokenRefused as refused:
        raise DashboardError(str(refused), 503) from None
    endpoint = metadata.get("authorization_endpoint")
    if not isinstance(endpoint, str):
        raise DashboardError(f"{issuer.label} publishes no authorization endpoint.", 503)
    state = {
        "state": secrets.token_urlsafe(24),
        "nonce": secrets.token_urlsafe(24),
        "verifier": secrets.token_urlsafe(48),
        "issuer": issuer.url,
        "next": safe_next(next),
        "until": time.time() + STATE_SECONDS,
    }
    settings: Settings = request.app.state.settings
    query = urlencode(
        {
            "response_type": "code",
            "client_id": settings.oidc_client_id,
            "redirect_uri": _callback_url(request),
            "scope": SCOPE,
            "state": state["state"],
            "nonce": state["nonce"],
            "code_challenge": _challenge(str(state["verifier"])),
            "code_challenge_method": "S256",
        }
    )
    separator = "&" if "?" in endpoint else "?"
    response = Response(status_code=303, headers={"Location": f"{endpoint}{separator}{query}"})
    codec = sessions(request)
    response.set_cookie(
        STATE_COOKIE,
        codec.seal(json.dumps(state).encode()),
        max_age=STATE_SECONDS,
        path=f"{PREFIX}/login",
        httponly=True,
        samesite="lax",
        secure=codec.secure(request),
    )
    return response


@router.get("/callback")
async def callback(request: Request) -> Response:
    codec = sessions(request)
    try:
        user = await _signed_in_user(request)
    except DashboardError as refused:
        response = _refusal(request, str(refused), refused.status)
    else:
        session_cookie = codec.issue(user)[1]
        # A page, not a redirect: after the issuer's cross-site redirect, a `SameSite=Strict`
        # session cookie is only sent once the browser navigates from a page of this site.
        response = render(request, "signed_in.html", {"target": _target(request)})
        codec.set_cookie(response, session_cookie, request)
    response.delete_cookie(STATE_COOKIE, path=f"{PREFIX}/login", httponly=True, samesite="lax")
    return response


def _target(request: Request) -> str:
    state = _state(request)
    return str(state.get("next", PREFIX)) if state else PREFIX


def _refusal(request: Request, message: str, status: int) -> Response:
    context = {"message": message, "status": status, "retry": f"{PREFIX}/login"}
    return render(request, "error.html", context, status=status)


def _state(request: Request) -> dict[str, Any] | None:
    sealed = sessions(request).unseal(request.cookies.get(STATE_COOKIE))
    if sealed is None:
        return None
    try:
        state = json.loads(sealed)
    except ValueError:
        return None
    if not isinstance(state, dict) or float(state.get("until", 0)) < time.time():
        return None
    return state


async def _signed_in_user(request: Request) -> Principal:
    """The user the issuer's answer signs in, or `DashboardError` (400, 401, 403, 503)."""
    state = _state(request)
    given_state = request.query_params.get("state", "")
    if state is None:
        raise DashboardError("This sign-in has expired or was not started here; start again.")
    if not hmac.compare_digest(given_state.encode(), str(state["state"]).encode()):
        raise DashboardError("This answer is for another sign-in (its state differs).")
    if "error" in request.query_params:
        reason = request.query_params.get("error_description") or request.query_params["error"]
        raise DashboardError(f"The issuer refused the sign-in: {reason}.", 401)
    code = request.query_params.get("code")
    if not code:
        raise DashboardError("The issuer's answer carries no authorization code.")
    return await run_in_threadpool(_exchange, request, state, code)


def _exchange(request: Request, state: dict[str, Any], code: str) -> Principal:
    settings: Settings = request.app.state.settings
    verifier = _verifier_or_none(request)
    if verifier is None or state["issuer"] not in settings.oidc_issuer_list:
        raise DashboardError("That issuer is no longer trusted here.", 401)
    try:
        metadata = verifier.discovery(str(state["issuer"]))
        tokens = _tokens(verifier.http, metadata, settings, request, state, code)
        claims = verifier.id_token_claims(
            str(tokens.get("id_token", "")),
            str(state["issuer"]),
            settings.oidc_client_id,
            str(state["nonce"]),
        )
        identity = verifier.identify(str(tokens.get("access_token", "")))
    except TokenRefused as refused:
        raise DashboardError(_sentence(refused), refused.status) from None
    if identity.subject != claims.get("sub"):
        raise DashboardError("The issuer's tokens name two different users.", 401)
    users: Users = request.app.state.users
    try:
        user = users.sign_in(identity.issuer, identity.subject, identity.name)
    except SubjectRefused as refused:
        raise DashboardError(_sentence(refused), 403) from None
    return principal_of_user(user, settings.oidc_admin_list, identity.groups)


def _sentence(error: Exception) -> str:
    text = str(error)
    return f"{text[:1].upper()}{text[1:]}."


def _tokens(
    http: httpx.Client,
    metadata: dict[str, Any],
    settings: Settings,
    request: Request,
    state: dict[str, Any],
    code: str,
) -> dict[str, Any]:
    """The issuer's tokens for `code`, at its token endpoint (client secret when configured)."""
    endpoint = metadata.get("token_endpoint")
    if not isinstance(endpoint, str):
        raise DashboardError("The issuer publishes no token endpoint.", 503)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": _callback_url(request),
        "code_verifier": str(state["verifier"]),
    }
    secret = settings.oidc_client_secret
    auth: httpx.Auth | None = None
    if secret is not None:
        auth = httpx.BasicAuth(settings.oidc_client_id, secret.get_secret_value())
    else:
        form["client_id"] = settings.oidc_client_id  # a public client names itself
    try:
        answer = http.post(endpoint, data=form, auth=auth or httpx.USE_CLIENT_DEFAULT)
    except httpx.HTTPError as error:
        raise DashboardError(f"Cannot reach the issuer: {error}.", 503) from None
    try:
        body = answer.json()
    except ValueError:
        body = {}
    if answer.status_code != 200 or not isinstance(body, dict):
        reason = (
            body.get("error_description") or body.get("error") if isinstance(body, dict) else ""
        )
        raise DashboardError(
            f"The issuer did not accept the sign-in ({reason or answer.status_code}); start again.",
            401,
        )
    return body
