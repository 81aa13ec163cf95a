"""What every dashboard page shares: templates, sign-in and CSRF checks, messages, error pages.

Every dashboard route goes through `DashboardRoute`, the one place that turns an error into
what a person can read: a page with the message (or JSON `{"detail": ...}` for the pages'
own scripts), never a blank screen or a stack trace; the domain's errors get the statuses of
`oscarpy/errors.py`'s table, as from the REST API. Pages reach data through the same
components the REST API uses (`app.state.registry`, `.store`, `.engine`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException

from oscarpy.auth.sessions import CSRF_FIELD, CSRF_HEADER, Session, SessionCodec
from oscarpy.errors import DISK_FULL, DOMAIN_ERRORS
from oscarpy.errors import status_of as domain_status_of
from oscarpy.services.errors import ServiceExists, ServiceNotFound

if TYPE_CHECKING:
    from oscarpy.engine import Engine
    from oscarpy.services.registry import ServiceRegistry
    from oscarpy.storage.store import ObjectStore

log = logging.getLogger(__name__)

PREFIX = "/ui"
FLASH_COOKIE = "oscar_flash"
_HERE = Path(__file__).parent
templates = Jinja2Templates(directory=_HERE / "templates")


#: Sent with every page: nothing cached, nothing framed (clickjacking), no script or style
#: but the dashboard's own files.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
}


class DashboardError(Exception):
    """A request the dashboard refuses, with the message to show and its HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class LoginRequired(Exception):
    """No valid session: pages send the browser to the sign-in page."""


#: What a page may raise to be answered with its message (the rest is logged, and answered 500).
_ANSWERED: tuple[type[Exception], ...] = (DashboardError, *DOMAIN_ERRORS, RequestValidationError)


def status_of(error: Exception) -> int:
    if isinstance(error, DashboardError):
        return error.status
    if isinstance(error, RequestValidationError):
        return 400  # as the REST API answers it
    return domain_status_of(error)


def message_of(error: Exception) -> str:
    if isinstance(error, ServiceNotFound):
        return f"There is no service named {error.name}."
    if isinstance(error, ServiceExists):
        return f"A service named {error.name} exists already."
    if isinstance(error, RequestValidationError):
        problems = [
            f"{'.'.join(str(part) for part in item.get('loc', ()))}: {item.get('msg', 'invalid')}"
            for item in error.errors()
        ]
        return "Invalid request: " + "; ".join(problems)
    text = str(error).strip() or error.__class__.__name__
    return text[0].upper() + text[1:]


def wants_json(request: Request) -> bool:
    return request.url.path.startswith(f"{PREFIX}/data/") or "application/json" in (
        request.headers.get("accept", "")
    )


class DashboardRoute(APIRoute):
    """A route whose errors become readable pages (or JSON for the pages' scripts)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired:
                if wants_json(request):
                    return JSONResponse({"detail": "Sign in again: your session ended."}, 401)
                target = request.url.path
                if request.method == "GET" and request.url.query:
                    target += "?" + request.url.query
                return RedirectResponse(
                    f"{PREFIX}/login?next={quote(target, safe='/')}", status_code=303
                )
            except _ANSWERED as error:
                status = status_of(error)
                if status == DISK_FULL:
                    return _disk_full(request, error)
                return error_response(request, message_of(error), status)
            except HTTPException as error:  # e.g. a malformed multipart body
                message = message_of(Exception(error.detail))
                return error_response(request, message, error.status_code)
            except Exception as error:
                if status_of(error) == DISK_FULL:
                    return _disk_full(request, error)
                log.error("unexpected error in the dashboard", exc_info=error)
                return error_response(
                    request, "Something went wrong on the server; its log has the details.", 500
                )
            finally:
                # Close an uploaded form's temporary files now, not when the collector runs.
                await request.close()

        return guarded


def _disk_full(request: Request, error: Exception) -> Response:
    log.warning("cannot answer a dashboard request, the data directory is full: %s", error)
    return error_response(request, "The server's data directory is full.", DISK_FULL)


def error_response(request: Request, message: str, status: int) -> Response:
    if wants_json(request):
        return JSONResponse({"detail": message}, status_code=status)
    return render(request, "error.html", {"message": message, "status": status}, status=status)


# -- components -------------------------------------------------------------------------------


def sessions(request: Request) -> SessionCodec:
    codec: SessionCodec = request.app.state.sessions
    return codec


def registry(request: Request) -> ServiceRegistry:
    found: ServiceRegistry = request.app.state.registry
    return found


def store(request: Request) -> ObjectStore:
    found: ObjectStore = request.app.state.store
    return found


def engine_or_none(request: Request) -> Engine | None:
    return getattr(request.app.state, "engine", None)


def engine(request: Request) -> Engine:
    found = engine_or_none(request)
    if found is None:
        raise DashboardError("The job engine is not running in this server.", 503)
    return found


# -- dependencies -----------------------------------------------------------------------------


def signed_in(request: Request) -> Session:
    """Dependency of every page but sign-in: the session, or off to the sign-in page."""
    session = sessions(request).from_request(request)
    if session is None:
        raise LoginRequired()
    request.state.session = session
    return session


async def checked(request: Request) -> Session:
    """Dependency of every state-changing route: a session and its CSRF token (header or form)."""
    session = signed_in(request)
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not SessionCodec.csrf_ok(session, given):
        raise DashboardError(
            "This form has expired or did not come from this dashboard; reload the page and "
            "try again.",
            403,
        )
    return session


SignedIn = Annotated[Session, Depends(signed_in)]
Checked = Annotated[Session, Depends(checked)]


# -- rendering --------------------------------------------------------------------------------


def flash(response: Response, request: Request, text: str, kind: str = "notice") -> Response:
    """A message shown once on the next page (after a redirect)."""
    value = sessions(request).seal(json.dumps({"kind": kind, "text": text}).encode())
    response.set_cookie(
        FLASH_COOKIE,
        value,
        max_age=60,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=sessions(request).secure(request),
    )
    return response


def safe_next(target: str | None) -> str:
    """Only a path of this dashboard: never another site (an open redirect)."""
    if target and target.startswith(f"{PREFIX}") and not target.startswith("//"):
        return target
    return PREFIX


def redirect(request: Request, url: str, text: str | None = None, kind: str = "notice") -> Response:
    response = RedirectResponse(url, status_code=303)
    return flash(response, request, text, kind) if text else response


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> Response:
    page: dict[str, Any] = {
        "session": getattr(request.state, "session", None),
        "prefix": PREFIX,
        "flash": None,
        "engine_running": engine_or_none(request) is not None,
    }
    sealed = sessions(request).unseal(request.cookies.get(FLASH_COOKIE))
    if sealed is not None:
        try:
            page["flash"] = json.loads(sealed)
        except ValueError:
            pass
    page.update(context or {})
    response = templates.TemplateResponse(request, template, page, status_code=status)
    if FLASH_COOKIE in request.cookies:
        response.delete_cookie(FLASH_COOKIE, path=PREFIX, httponly=True, samesite="strict")
    response.headers.update(PAGE_HEADERS)
    return response


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "—"


def _size(value: int | float) -> str:
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{int(amount)} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"


def _duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "—"
    seconds = (end - start).total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {seconds} s"


templates.env.filters["when"] = _when
templates.env.filters["size"] = _size
templates.env.globals["duration"] = _duration
templates.env.globals["csrf_field"] = CSRF_FIELD
