"""Credentials checks for the REST API, compared in constant time.

Every `/system/*` route takes a signed-in caller, turned into a `Principal`: the admin's HTTP
Basic credentials (the admin), or `Authorization: Bearer <token>` of a trusted OpenID Connect
issuer (a user, created on first sign-in; see `oscarpy.auth.oidc` and `oscarpy.auth.users`).
A service's own routes (`/job/{service}`, `/run/{service}`) also take
`Authorization: Bearer <that service's token>`; a token opens its own service only.

The dashboard's browser-side script calls the same routes with its session instead: the signed
session cookie plus the session's CSRF token in `X-CSRF-Token` count as the session's user
(`caller_by_password`, the one place that decides): the admin, or a user signed in through
OIDC. The cookie alone never does.
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
from starlette.requests import HTTPConnection

from oscarpy.auth.credentials import AdminCredentials
from oscarpy.auth.oidc import OidcVerifier, TokenRefused
from oscarpy.auth.principal import ADMIN, Principal
from oscarpy.auth.sessions import session_from_api_request
from oscarpy.auth.throttle import Throttle, Throttled, client_address
from oscarpy.auth.users import SubjectRefused, Users, principal_of_user
from oscarpy.config import Settings
from oscarpy.db import Database
from oscarpy.services import access
from oscarpy.services.errors import ServiceNotFound
from oscarpy.services.model import Service, is_service_name

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
    auto_error=False,
    scheme_name="serviceToken",
    description="The token of the service called, or a user's OpenID Connect access token.",
)
oidc_scheme = _DocumentedBearer(
    auto_error=False,
    scheme_name="oidcToken",
    description="An access token of a trusted OpenID Connect issuer (OSCAR_OIDC_ISSUERS).",
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


def caller_by_password(request: Request) -> Principal | None:
    """The admin by Basic credentials, or a dashboard session's user (with its CSRF header);
    None otherwise. Raises `Throttled` as `is_admin` does."""
    if parse_basic(request.headers.get("authorization", "")) is None:
        session = session_from_api_request(request)
        return session.principal if session is not None else None
    return ADMIN if is_admin(request, request.app.state.admin) else None


def is_admin(request: Request, admin: AdminCredentials) -> bool:
    """The admin's Basic credentials, or an admin's dashboard session with its CSRF header.
    Raises `Throttled` (429) while the caller's address or user must wait after failed
    attempts."""
    parsed = parse_basic(request.headers.get("authorization", ""))
    if parsed is None:
        session = session_from_api_request(request)
        return session is not None and session.admin
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


def install_throttle(app: FastAPI, settings: Settings, database: Database) -> None:
    """One `Throttle` for the app (the server hands it to the S3 edge too), answered with 429."""
    app.state.throttle = Throttle.from_settings(settings, database)
    app.add_exception_handler(Throttled, _throttled)


def _user_principal(request: Request, token: str) -> Principal:
    """The user an OIDC bearer token signs in (created on first sign-in), else 401/403."""
    verifier: OidcVerifier | None = getattr(request.app.state, "oidc", None)
    if verifier is None:
        raise unauthorized()
    try:
        identity = verifier.identify(token)
        users: Users = request.app.state.users
        user = users.sign_in(identity.issuer, identity.subject, identity.name)
    except TokenRefused as refused:
        if refused.status == status.HTTP_401_UNAUTHORIZED:
            raise unauthorized(str(refused)) from None
        raise HTTPException(refused.status, detail=str(refused)) from None
    except SubjectRefused as refused:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=str(refused)) from None
    settings: Settings = request.app.state.settings
    return principal_of_user(user, settings.oidc_admin_list, identity.groups)


def principal_of(request: Request) -> Principal | None:
    """Who calls: the admin (Basic credentials or a dashboard session) or a user (OIDC bearer
    token); None without credentials or with wrong Basic ones. A refused token raises 401 or
    403 with the reason, so that its holder learns what to fix."""
    token = parse_bearer(request.headers.get("authorization", ""))
    if token is not None:
        return _user_principal(request, token)
    return caller_by_password(request)


def require_admin(
    request: Request,
    _documented: Annotated[None, Security(basic_scheme)],
) -> None:
    """FastAPI dependency guarding the admin's routes; a signed-in user who is no admin gets
    403."""
    principal = principal_of(request)
    if principal is None:
        raise unauthorized()
    if not principal.admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="only an admin may do this")


def current_principal(
    request: Request,
    _basic: Annotated[None, Security(basic_scheme)],
    _oidc: Annotated[None, Security(oidc_scheme)],
) -> Principal:
    """FastAPI dependency: who calls a `/system/*` route, else 401."""
    principal = principal_of(request)
    if principal is None:
        raise unauthorized()
    return principal


def service_caller(request: Request, service_name: str) -> Principal | None:
    """Who may call `service_name`'s `/job` or `/run`: a signed-in caller (the route then checks
    the service's visibility), or None for the Bearer token of that service; else 401.

    A Bearer token is first compared with the service's token, then tried as an OIDC token. An
    absent service answers 401 to a token as to a wrong one (it tells a caller without
    credentials nothing); a signed-in caller gets the 404.
    """
    token = parse_bearer(request.headers.get("authorization", ""))
    if token is not None:
        service = find_service(request, service_name)
        if service is not None and service.token and secrets_equal(token, service.token):
            return None
        if getattr(request.app.state, "oidc", None) is not None:
            return _user_principal(request, token)
        raise unauthorized(headers=SERVICE_CHALLENGE)
    caller = caller_by_password(request)
    if caller is not None:
        return caller
    raise unauthorized(headers=SERVICE_CHALLENGE)


def find_service(connection: HTTPConnection, service_name: str) -> Service | None:
    """The registered service `service_name`, or None (also for a name no service may have)."""
    registry = connection.app.state.registry
    service: Service | None = registry.get(service_name) if is_service_name(service_name) else None
    return service


def service_for(
    request: Request, principal: Principal, service_name: str, action: access.Action
) -> Service:
    """The service `service_name` if `principal` may `action` it: 404 when absent, 403 when
    its owner and visibility do not let the caller."""
    service = find_service(request, service_name)
    if service is None:
        raise ServiceNotFound(service_name)
    return access.require(principal, service, action)


def require_invoker(request: Request, service_name: str) -> Principal | None:
    """`service_caller`, then the service's visibility for a signed-in caller. Blocking (the
    first sign-in of a token may ask its issuer): run it in a thread."""
    caller = service_caller(request, service_name)
    if caller is not None:
        service_for(request, caller, service_name, "invoke")
    return caller


#: Dependencies a route of one service adds to document both schemes in the OpenAPI document;
#: the route still calls `service_caller` with its service's name.
SERVICE_AUTH_DOCUMENTATION: list[Depends] = [Security(basic_scheme), Security(bearer_scheme)]
#: The same for the routes that take any signed-in caller, without a dependency of their own.
USER_AUTH_DOCUMENTATION: list[Depends] = [Security(basic_scheme), Security(oidc_scheme)]

metrics_scheme = _DocumentedBearer(
    auto_error=False,
    scheme_name="metricsToken",
    description="OSCAR_METRICS_TOKEN.",
)
METRICS_AUTH_DOCUMENTATION: list[Depends] = [Security(basic_scheme), Security(metrics_scheme)]
"""`/metrics`: the admin, or Prometheus with the scrape token (never a service's token)."""
