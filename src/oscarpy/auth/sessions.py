"""The dashboard's signed session cookie and its CSRF token.

The cookie holds who signed in (the admin, by password, or a user signed in through an OpenID
Connect issuer: their user id and admin flag), until when, a session id and the CSRF token, as
JSON signed
with HMAC-SHA256. Its key is derived from a random secret of the installation (stored with mode
0600 in the data directory) and the admin's password: a session survives a restart of the
server, changing the password signs everyone out, and a cookie gives nothing to guess the
password from offline. Logging out revokes the session id in the state DB (the cookie is also
cleared), so a copied cookie stops working at once, after a restart and in every process.

The cookie is `Secure` when the request came over HTTPS (directly, or through a proxy that says
so in `X-Forwarded-Proto`), or always or never as the `secure_cookie` setting says.

The CSRF token travels in every state-changing form (`csrf_token`) and in the `X-CSRF-Token`
header of the dashboard's script; a request from another site cannot read it. The cookie is
`SameSite=Strict` as well, so a cross-site request does not even carry it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from starlette.requests import HTTPConnection
from starlette.responses import Response

from oscarpy.auth.credentials import AdminCredentials
from oscarpy.auth.principal import ADMIN, ADMIN_USER_ID, Principal
from oscarpy.auth.revocations import Revocations

SecureCookie = Literal["auto", "always", "never"]

COOKIE_NAME = "oscar_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SESSION_SECONDS = 12 * 3600
_KEY_PURPOSE = b"oscar-py dashboard session v2"


@dataclass(frozen=True)
class Session:
    """A signed-in dashboard user: the admin, or a user (`user_id`) signed in through OIDC."""

    username: str
    session_id: str
    csrf_token: str
    expires_at: float
    user_id: str = ADMIN_USER_ID
    admin: bool = True

    @property
    def principal(self) -> Principal:
        """Who the session acts as, for every access check of the dashboard and its calls."""
        if self.user_id == ADMIN_USER_ID:
            return ADMIN
        return Principal(self.user_id, admin=self.admin, name=self.username)


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionCodec:
    """Issues, reads and revokes dashboard sessions for one admin."""

    def __init__(
        self,
        admin: AdminCredentials,
        secret: bytes,
        revocations: Revocations,
        *,
        secure_cookie: SecureCookie = "auto",
    ) -> None:
        self.admin = admin
        self.secure_cookie = secure_cookie
        password_digest = hashlib.sha256(admin.password.encode()).digest()
        self._key = hmac.new(secret, _KEY_PURPOSE + password_digest, hashlib.sha256).digest()
        self.revocations = revocations

    def check_password(self, username: str, password: str) -> bool:
        # Both comparisons run, so that timing does not tell which one failed.
        user_ok = hmac.compare_digest(username.encode(), self.admin.username.encode())
        password_ok = hmac.compare_digest(password.encode(), self.admin.password.encode())
        return user_ok and password_ok

    def issue(self, user: Principal = ADMIN) -> tuple[Session, str]:
        """A new session for `user` (by default the admin) and its cookie value."""
        session = Session(
            username=self.admin.username if user.user_id == ADMIN_USER_ID else user.name,
            session_id=secrets.token_urlsafe(16),
            csrf_token=secrets.token_urlsafe(32),
            expires_at=time.time() + SESSION_SECONDS,
            user_id=user.user_id,
            admin=user.admin,
        )
        payload = json.dumps(
            {
                "u": session.username,
                "s": session.session_id,
                "c": session.csrf_token,
                "e": session.expires_at,
                "i": session.user_id,
                "a": session.admin,
            },
            separators=(",", ":"),
        ).encode()
        return session, self.seal(payload)

    def read(self, value: str | None) -> Session | None:
        """The session a cookie value carries, if its signature holds and it is current."""
        payload = self.unseal(value)
        if payload is None:
            return None
        try:
            data = json.loads(payload)
            session = Session(
                str(data["u"]),
                str(data["s"]),
                str(data["c"]),
                float(data["e"]),
                str(data.get("i", ADMIN_USER_ID)),
                bool(data.get("a", True)),
            )
        except (ValueError, KeyError, TypeError):
            return None
        if session.expires_at < time.time():
            return None
        if session.user_id == ADMIN_USER_ID and session.username != self.admin.username:
            return None
        if self.revocations.is_revoked(session.session_id):
            return None
        return session

    def from_request(self, connection: HTTPConnection) -> Session | None:
        return self.read(connection.cookies.get(COOKIE_NAME))

    def revoke(self, session: Session) -> None:
        self.revocations.revoke(session.session_id, session.expires_at)

    @staticmethod
    def csrf_ok(session: Session, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(str(given).encode(), session.csrf_token.encode())

    def secure(self, connection: HTTPConnection) -> bool:
        """Whether cookies set in answer to `connection` carry `Secure`."""
        if self.secure_cookie != "auto":
            return self.secure_cookie == "always"
        forwarded = connection.headers.get("x-forwarded-proto", "").split(",")[0].strip()
        return connection.url.scheme == "https" or forwarded.lower() == "https"

    def set_cookie(self, response: Response, value: str, connection: HTTPConnection) -> None:
        response.set_cookie(
            COOKIE_NAME,
            value,
            max_age=SESSION_SECONDS,
            path="/",
            httponly=True,
            samesite="strict",
            secure=self.secure(connection),
        )

    def clear_cookie(self, response: Response, connection: HTTPConnection) -> None:
        response.delete_cookie(
            COOKIE_NAME,
            path="/",
            httponly=True,
            samesite="strict",
            secure=self.secure(connection),
        )

    def seal(self, payload: bytes) -> str:
        """`payload` signed, for a short-lived cookie this codec alone can have written."""
        return f"{_encode(payload)}.{_encode(self._sign(payload))}"

    def unseal(self, value: str | None) -> bytes | None:
        if not value:
            return None
        encoded, _, signature = value.partition(".")
        try:
            payload = _decode(encoded)
            given = _decode(signature)
        except (binascii.Error, ValueError):
            return None
        return payload if hmac.compare_digest(given, self._sign(payload)) else None

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()


def session_from_api_request(connection: HTTPConnection) -> Session | None:
    """The dashboard session of a REST API request, when it carries the cookie *and* the CSRF
    header; `None` otherwise (also when no dashboard is mounted)."""
    codec: SessionCodec | None = getattr(connection.app.state, "sessions", None)
    if codec is None:
        return None
    session = codec.from_request(connection)
    if session is None or not codec.csrf_ok(session, connection.headers.get(CSRF_HEADER)):
        return None
    return session
