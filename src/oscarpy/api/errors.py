"""Exceptions → HTTP answers, in one table. Every error body is JSON `{"detail": "..."}`."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from oscarpy.api.schemas import ErrorBody
from oscarpy.services.errors import (
    ServiceDefinitionError,
    ServiceError,
    ServiceExists,
    ServiceNotFound,
)

log = logging.getLogger(__name__)

STATUS_OF: dict[type[ServiceError], int] = {
    ServiceDefinitionError: 400,
    ServiceNotFound: 404,
    # OSCAR answers 400 to a duplicate name; 409 says what happened.
    ServiceExists: 409,
}

_DESCRIPTIONS = {
    400: "Invalid request; the detail names the field",
    401: "Missing or wrong credentials",
    404: "No such service",
    409: "A service with that name exists",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that can answer these error codes, for the OpenAPI document."""
    return {code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]} for code in codes}


async def _service_error(_request: Request, error: Exception) -> JSONResponse:
    status = next((code for kind, code in STATUS_OF.items() if isinstance(error, kind)), 500)
    return JSONResponse({"detail": str(error)}, status_code=status)


async def _invalid_request(_request: Request, error: Exception) -> JSONResponse:
    # OSCAR answers malformed requests with 400, not FastAPI's 422.
    assert isinstance(error, RequestValidationError)
    problems = []
    for item in error.errors():
        location = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        problems.append(f"{location}: {message}" if location else message)
    return JSONResponse({"detail": "; ".join(problems) or "invalid request"}, status_code=400)


async def _unexpected(_request: Request, error: Exception) -> JSONResponse:
    log.error("unexpected error answering a request", exc_info=error)
    return JSONResponse({"detail": "internal error; the server log has the details"}, 500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _unexpected)
    _document_400_not_422(app)


def _document_400_not_422(app: FastAPI) -> None:
    """FastAPI documents 422 for every route with parameters; we answer those errors with 400."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.get("responses", {})
                if responses.pop("422", None) is not None:
                    responses.setdefault(
                        "400",
                        {
                            "description": _DESCRIPTIONS[400],
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/ErrorBody"}
                                }
                            },
                        },
                    )
        schemas = document.get("components", {}).get("schemas", {})
        text = json.dumps(document.get("paths", {}))
        for unused in ("HTTPValidationError", "ValidationError"):
            if f"#/components/schemas/{unused}" not in text:
                schemas.pop(unused, None)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
