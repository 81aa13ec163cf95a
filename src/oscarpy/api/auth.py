"""Credentials checks for the REST API, compared in constant time.

Every `/system/*` route takes the admin's HTTP Basic credentials. A service's own routes
(`/job/{service}`, `/run/{service}`) also take `Authorization: Bearer <that service's token>`;
a token opens its own service only.

The dashboard's browser-side script calls the same routes with its session instead: the signed
session cookie plus the session's CSRF token in `X-CSRF-Token` count as the admin's
credentials (`is_admin`, the one place that decides). The cookie alone never does.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Annotated

from fastapi import FastAPI, HTTPException, Request, Security, status
from fastapi.params import Depends
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBasic, HTTPBearer

from oscarpy.auth.credentials import AdminCredentials
from oscarpy.auth.principal import ADMIN, Principal
from oscarpy.auth.sessions import session_from_api_request
from oscarpy.auth.throttle import Throttle, Throttled, client_address
from oscarpy.config import Settings
from oscarpy.services.model import is_service_name

BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="oscar"'}
SERVICE_CHALLENGE = {"WWW-Authenticate": 'Basic realm="oscar", Bearer realm="oscar"'}


class _DocumentedBasic(HTTPBasic):
    """HTTP Basic in the OpenAPI document only: the checks below read the header themselves, so
    that a malformed header gets the same 401 (and challenge) as a wrong password."""

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        return None


class _DocumentedBearer(HTTPBearer):
    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        return None


basic_scheme = _DocumentedBasic(
    auto_error=False, scheme_name="adminBasic", description="The admin's user and password."
)
bearer_scheme = _DocumentedBearer(
    auto_error=False, scheme_name="serviceToken", description="The token of the service called."
)


def unauthorized(
    detail: str = "Invalid or missing credentials", headers: dict[str, str] | None = None
) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers=headers or BASIC_CHALLENGE
    )


def secrets_equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def parse_basic(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, separator, password = decoded.partition(":")
    return (username, password) if separator else None


def parse_bearer(header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def is_admin(request: Request, admin: AdminCredentials) -> bool:
    """The admin's Basic credentials, or a dashboard session with its CSRF header. Raises
    `Throttled` (429) while the caller's address or user must wait after failed attempts."""
    parsed = parse_basic(request.headers.get("authorization", ""))
    if parsed is None:
        return session_from_api_request(request) is not None
    username, password = parsed
    throttle: Throttle = request.app.state.throttle

    def matches() -> bool:
        # Evaluate both comparisons so that timing does not tell which one failed.
        user_ok = secrets_equal(username, admin.username)
        password_ok = secrets_equal(password, admin.password)
        return user_ok and password_ok

    return throttle.attempt(client_address(request.scope), username, "REST API", matches)


async def _throttled(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, Throttled)
    return JSONResponse(
        {"detail": str(error)},
        status_code=status.HTTP_429_TOO_MANY_REQUESTS,
        headers={"Retry-After": error.retry_after_header},
    )


def install_throttle(app: FastAPI, settings: Settings) -> None:
    """One `Throttle` for the app (the server hands it to the S3 edge too), answered with 429."""
    app.state.throttle = Throttle.from_settings(settings)
    app.add_exception_handler(Throttled, _throttled)


def require_admin(
    request: Request,
    _documented: Annotated[None, Security(basic_scheme)],
) -> None:
    """FastAPI dependency guarding every `/system/*` route."""
    admin: AdminCredentials = request.app.state.admin
    if not is_admin(request, admin):
        raise unauthorized()


def current_principal(
    request: Request,
    _documented: Annotated[None, Security(basic_scheme)],
) -> Principal:
    """FastAPI dependency: who calls a `/system/*` route, else 401."""
    if is_admin(request, request.app.state.admin):
        return ADMIN
    raise unauthorized()


def require_service_access(request: Request, service_name: str) -> bool:
    """Pass with the admin's Basic credentials or the Bearer token of `service_name`, else 401;
    True for the admin, False for the token (which opens less: see `/job` events).

    An absent service answers 401 to a token as to a wrong one (it tells a caller without the
    admin's credentials nothing); with the admin's credentials the route reports the 404.
    """
    if is_admin(request, request.app.state.admin):
        return True
    token = parse_bearer(request.headers.get("authorization", ""))
    if token is not None:
        registry = request.app.state.registry
        service = registry.get(service_name) if is_service_name(service_name) else None
        if service is not None and service.token and secrets_equal(token, service.token):
            return False
    raise unauthorized(headers=SERVICE_CHALLENGE)


#: Dependencies a route of one service adds to document both schemes in the OpenAPI document;
#: the route still calls `require_service_access` with its service's name.
SERVICE_AUTH_DOCUMENTATION: list[Depends] = [Security(basic_scheme), Security(bearer_scheme)]

metrics_scheme = _DocumentedBearer(
    auto_error=False,
    scheme_name="metricsToken",
    description="OSCAR_METRICS_TOKEN.",
)
METRICS_AUTH_DOCUMENTATION: list[Depends] = [Security(basic_scheme), Security(metrics_scheme)]
"""`/metrics`: the admin, or Prometheus with the scrape token (never a service's token)."""
