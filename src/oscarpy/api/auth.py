"""Credentials checks for the REST API, compared in constant time."""

from __future__ import annotations

import base64
import binascii
import hmac

from fastapi import HTTPException, Request, status

from oscarpy.credentials import AdminCredentials

BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="oscar"'}


def unauthorized(detail: str = "Invalid or missing credentials") -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers=BASIC_CHALLENGE)


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


def is_admin(request: Request, admin: AdminCredentials) -> bool:
    parsed = parse_basic(request.headers.get("authorization", ""))
    if parsed is None:
        return False
    username, password = parsed
    # Evaluate both comparisons so that timing does not tell which one failed.
    user_ok = secrets_equal(username, admin.username)
    password_ok = secrets_equal(password, admin.password)
    return user_ok and password_ok


def require_admin(request: Request) -> None:
    """FastAPI dependency guarding every `/system/*` route."""
    admin: AdminCredentials = request.app.state.admin
    if not is_admin(request, admin):
        raise unauthorized()
