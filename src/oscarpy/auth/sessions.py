"""The dashboard's signed session cookie and its CSRF token.

The cookie holds who signed in, until when, a session id and the CSRF token, as JSON signed
with HMAC-SHA256. Its key is derived from the admin's password: a session survives a restart of
the server, and changing the password signs everyone out. Logging out revokes the session id
in this process (the cookie is also cleared), so a copied cookie stops working at once.

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
import threading
import time
from dataclasses import dataclass

from starlette.requests import HTTPConnection
from starlette.responses import Response

from oscarpy.auth.credentials import AdminCredentials

COOKIE_NAME = "oscar_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SESSION_SECONDS = 12 * 3600
_KEY_PURPOSE = b"oscar-py dashboard session v1"


@dataclass(frozen=True)
class Session:
    """A signed-in dashboard user."""

    username: str
    session_id: str
    csrf_token: str
    expires_at: float


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionCodec:
    """Issues, reads and revokes dashboard sessions for one admin."""

    def __init__(self, admin: AdminCredentials, *, secure_cookie: bool = False) -> None:
        self.admin = admin
        self.secure_cookie = secure_cookie
        self._key = hmac.new(admin.password.encode(), _KEY_PURPOSE, hashlib.sha256).digest()
        self._revoked: dict[str, float] = {}
        self._lock = threading.Lock()

    def check_password(self, username: str, password: str) -> bool:
        # Both comparisons run, so that timing does not tell which one failed.
        user_ok = hmac.compare_digest(username.encode(), self.admin.username.encode())
        password_ok = hmac.compare_digest(password.encode(), self.admin.password.encode())
        return user_ok and password_ok

    def issue(self) -> tuple[Session, str]:
        """A new session for the admin and its cookie value."""
        session = Session(
            username=self.admin.username,
            session_id=secrets.token_urlsafe(16),
            csrf_token=secrets.token_urlsafe(32),
            expires_at=time.time() + SESSION_SECONDS,
        )
        payload = json.dumps(
            {
                "u": session.username,
                "s": session.session_id,
                "c": session.csrf_token,
                "e": session.expires_at,
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
            session = Session(str(data["u"]), str(data["s"]), str(data["c"]), float(data["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        if session.expires_at < time.time() or session.username != self.admin.username:
            return None
        with self._lock:
            if session.session_id in self._revoked:
                return None
        return session

    def from_request(self, connection: HTTPConnection) -> Session | None:
        return self.read(connection.cookies.get(COOKIE_NAME))

    def revoke(self, session: Session) -> None:
        now = time.time()
        with self._lock:
            # Forget revocations whose cookies have expired anyway.
            self._revoked = {sid: until for sid, until in self._revoked.items() if until > now}
            self._revoked[session.session_id] = session.expires_at

    @staticmethod
    def csrf_ok(session: Session, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(str(given).encode(), session.csrf_token.encode())

    def set_cookie(self, response: Response, value: str) -> None:
        response.set_cookie(
            COOKIE_NAME,
            value,
            max_age=SESSION_SECONDS,
            path="/",
            httponly=True,
            samesite="strict",
            secure=self.secure_cookie,
        )

    def clear_cookie(self, response: Response) -> None:
        response.delete_cookie(
            COOKIE_NAME, path="/", httponly=True, samesite="strict", secure=self.secure_cookie
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
