"""Refuse cross-site state changes: the REST API's defence against CSRF.

A browser that holds the admin's Basic credentials (cached after a prompt) or a dashboard
session sends them with any request a hostile page makes, a `text/plain` POST included, which
needs no CORS preflight. Browsers also say where such a request comes from: `Sec-Fetch-Site`
(modern browsers, on trustworthy origins) and `Origin` (on every cross-origin POST, PUT,
DELETE). A state-changing request that either header marks as coming from another site is
refused with 403 before any route runs. OSCAR's own clients (oscar-cli, oscar_python, curl)
send neither header and are not affected.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, status
from starlette.types import ASGIApp, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SAME_SITE_FETCHES = frozenset({"same-origin", "none"})


def _origin_key(origin: str) -> str | None:
    """`host:port` of an Origin value, lowercase, default ports made explicit."""
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}".lower()


def _host_keys(host: str) -> set[str]:
    """The `host:port` keys a Host header matches (its port, or either default port)."""
    host = host.strip().lower()
    if not host:
        return set()
    if host.endswith("]") or ":" not in host:
        return {f"{host}:80", f"{host}:443"}
    return {host}


class CrossSiteGuard:
    """ASGI middleware; `trusted_origins` are other origins allowed to change state (e.g. the
    public URL of a reverse proxy that rewrites the Host header)."""

    def __init__(
        self,
        app: ASGIApp,
        trusted_origins: list[str] | None = None,
        cors_origins: list[str] | None = None,
    ) -> None:
        self.app = app
        self.trusted = {key for key in map(_origin_key, trusted_origins or []) if key}
        # Pages of these origins call from another site on purpose (OSCAR's dashboard served
        # elsewhere); `*` is not one of them: it opens reads, not changes.
        self.cross_site = {key for key in map(_origin_key, cors_origins or []) if key}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            why = self.refusal(scope)
            if why is not None:
                await _forbidden(why, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> str | None:
        headers = {name.lower(): value.decode("latin-1") for name, value in scope["headers"]}
        fetch_site = headers.get(b"sec-fetch-site")
        origin_key = _origin_key(headers.get(b"origin") or "")
        if origin_key is not None and origin_key in self.cross_site:
            return None
        if fetch_site is not None:
            # The browser's own verdict; it holds behind a proxy that rewrites Host, too.
            if fetch_site.strip().lower() in _SAME_SITE_FETCHES:
                return None
            return f"a {fetch_site[:40]!r} request may not change anything here (Sec-Fetch-Site)"
        origin = headers.get(b"origin")
        if origin is None:
            return None
        key = _origin_key(origin)
        if key is not None and (key in self.trusted or key in _host_keys(headers.get(b"host", ""))):
            return None
        return (
            f"a request from {origin[:100]!r} may not change anything here; add it to "
            "OSCAR_TRUSTED_ORIGINS if it is this server's own address"
        )


def require_json(request: Request) -> None:
    """415 unless the body is declared JSON. A browser sends `text/plain`, form types, or none
    without a preflight; an absent type is allowed, because oscar-cli sends none (the
    cross-site check above covers that case)."""
    declared = request.headers.get("content-type")
    if declared is None:
        return
    media = declared.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail=f"send the definition as application/json, not {media[:60]!r}",
        )


async def _forbidden(detail: str, send: Send) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
