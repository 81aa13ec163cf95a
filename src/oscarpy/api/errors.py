"""Exceptions → HTTP answers: the message as plain text, as OSCAR answers (its clients, the
dashboard among them, show the body as it is), or `{"detail": "..."}` to a client that prefers
JSON to plain text in its `Accept` header (oscar-py's dashboard script asks so).

The domain's exceptions get the status of `oscarpy/errors.py`'s table (the dashboard's too);
this module adds what only the REST edge raises: FastAPI's validation errors and HTTP errors.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from oscarpy.api.schemas import ErrorBody
from oscarpy.errors import DISK_FULL, DOMAIN_ERRORS, status_of
from oscarpy.storage.errors import is_disk_full

log = logging.getLogger(__name__)

_DESCRIPTIONS = {
    400: "Invalid request; the detail names the field",
    401: "Missing or wrong credentials",
    403: "Signed in, but not allowed (owner, visibility or group)",
    404: "No such service",
    409: "A service with that name exists, or the state forbids it",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that can answer these error codes, for the OpenAPI document."""
    return {
        code: {
            "model": ErrorBody,
            "description": _DESCRIPTIONS[code] + " (plain text unless JSON is preferred)",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
        for code in codes
    }


def _quality(accept: str, wanted: tuple[str, ...]) -> float:
    """The highest q the `Accept` header gives any of the media ranges in `wanted`."""
    best = 0.0
    for item in accept.split(","):
        media, *parameters = (part.strip() for part in item.split(";"))
        if media.lower() not in wanted:
            continue
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        best = max(best, quality)
    return best


def prefers_json(request: Request) -> bool:
    """Whether the client ranks JSON above plain text (axios's default, `application/json,
    text/plain, */*`, does not: OSCAR's dashboard gets text)."""
    accept = request.headers.get("accept", "")
    json_quality = _quality(accept, ("application/json", "application/*", "*/*"))
    text_quality = _quality(accept, ("text/plain", "text/*", "*/*"))
    return json_quality > text_quality


def error_answer(
    request: Request, status: int, detail: str, headers: dict[str, str] | None = None
) -> Response:
    """One error answer in the form the client takes (see the module docstring)."""
    if prefers_json(request):
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)
    return PlainTextResponse(detail, status_code=status, headers=headers)


async def _domain_error(request: Request, error: Exception) -> Response:
    status = status_of(error)
    if status == DISK_FULL:
        return await _unexpected(request, error)
    return error_answer(request, status, str(error))


async def _invalid_request(request: Request, error: Exception) -> Response:
    # OSCAR answers malformed requests with 400, not FastAPI's 422.
    assert isinstance(error, RequestValidationError)
    problems = []
    for item in error.errors():
        location = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        problems.append(f"{location}: {message}" if location else message)
    return error_answer(request, 400, "; ".join(problems) or "invalid request")


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    headers = dict(error.headers or {})
    if error.status_code in (204, 304):
        return Response(status_code=error.status_code, headers=headers)
    if error.status_code == 405:
        # Starlette names the methods of the first route that matched the path only; the
        # OpenAPI document knows them all.
        allowed = _documented_methods(request.app.openapi(), request.url.path)
        if allowed:
            headers["Allow"] = ", ".join(allowed)
    return error_answer(request, error.status_code, str(error.detail), headers)


def _documented_methods(document: dict[str, Any], path: str) -> list[str]:
    methods: set[str] = set()
    for template, operations in document.get("paths", {}).items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path.rstrip("/") or "/"):
            methods.update(method.upper() for method in operations)
    return sorted(methods)


async def _unexpected(request: Request, error: Exception) -> Response:
    if is_disk_full(error):
        log.warning("cannot answer a request, the data directory is full: %s", error)
        return error_answer(request, DISK_FULL, "the server's data directory is full")
    log.error("unexpected error answering a request", exc_info=error)
    return error_answer(request, 500, "internal error; the server log has the details")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for root in DOMAIN_ERRORS:
        app.add_exception_handler(root, _domain_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _unexpected)
    # The errors a full disk raises, answered by the same function but registered by class: a
    # handler of `Exception` answers and then re-raises (the connection is dropped and the
    # traceback logged), while a class handler just answers the 507.
    app.add_exception_handler(OSError, _unexpected)
    app.add_exception_handler(OperationalError, _unexpected)
