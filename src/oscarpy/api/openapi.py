"""Final touches to the generated OpenAPI document, so that it says what the API really does.

- Request validation errors are answered 400 (OSCAR's code), not FastAPI's 422.
- A service definition is read more leniently than it is answered (null means the default, `cpu`
  may be a number), so requests get their own `ServiceDefinition` schema.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from oscarpy.api.auth import require_admin
from oscarpy.services.model import Service

OPENAPI_URL = "/openapi.json"
DEFINITION_REF = "#/components/schemas/ServiceDefinition"
_ERROR_400 = {
    "description": "Invalid request; the detail names the field",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
}


def serve(app: FastAPI, *, interactive: bool) -> None:
    """`/openapi.json` for the admin only; `/docs` and `/redoc` (for the admin too) only when
    `interactive`, because their pages load Swagger UI and ReDoc scripts from a CDN, which
    would then run with the admin's credentials."""
    guarded = [Depends(require_admin)]

    @app.get(OPENAPI_URL, include_in_schema=False, dependencies=guarded)
    def openapi_document() -> JSONResponse:
        return JSONResponse(app.openapi())

    if not interactive:
        return

    @app.get("/docs", include_in_schema=False, dependencies=guarded)
    def swagger_page() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=OPENAPI_URL, title=f"{app.title} API")

    @app.get("/redoc", include_in_schema=False, dependencies=guarded)
    def redoc_page() -> HTMLResponse:
        return get_redoc_html(openapi_url=OPENAPI_URL, title=f"{app.title} API")


def document(app: FastAPI) -> None:
    """Have `app.openapi()` return the finished document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            finished = generate()
            _errors_are_400(finished)
            finished.setdefault("components", {}).setdefault("schemas", {}).update(
                definition_schemas()
            )
            _drop_unused_schemas(finished)
            app.openapi_schema = finished
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def definition_schemas() -> dict[str, dict[str, Any]]:
    """`ServiceDefinition` and the schemas it refers to, as a request may spell them."""
    root = Service.model_json_schema(
        mode="validation", ref_template="#/components/schemas/{model}Definition"
    )
    schemas = {f"{name}Definition": schema for name, schema in root.pop("$defs", {}).items()}
    for field in ("cpu", "memory"):
        described = root["properties"][field]
        described.pop("type", None)
        described["anyOf"] = [{"type": "string"}, {"type": "number"}]
    root["title"] = "ServiceDefinition"
    root["description"] = (
        "A service as clients send it. Keys are case-insensitive; null, and an empty string "
        "for settings with a default, mean the default."
    )
    schemas["ServiceDefinition"] = root
    for schema in schemas.values():
        _optional_means_nullable(schema)
    return schemas


def _optional_means_nullable(schema: dict[str, Any]) -> None:
    required = set(schema.get("required", ()))
    for name, described in schema.get("properties", {}).items():
        if name in required or _admits_null(described):
            continue
        if set(described) - set(_ANNOTATIONS) == {"anyOf"}:
            described["anyOf"].append({"type": "null"})
            continue
        core = {key: value for key, value in described.items() if key not in _ANNOTATIONS}
        annotations = {key: value for key, value in described.items() if key in _ANNOTATIONS}
        schema["properties"][name] = {"anyOf": [core, {"type": "null"}], **annotations}


_ANNOTATIONS = ("title", "description", "default")


def _admits_null(described: dict[str, Any]) -> bool:
    if not described or described.get("type") == "null":
        return True  # `{}` (OSCAR-only keys) admits anything
    return any(branch.get("type") == "null" for branch in described.get("anyOf", ()))


def _errors_are_400(finished: dict[str, Any]) -> None:
    for operations in finished.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if responses.pop("422", None) is not None:
                responses.setdefault("400", _ERROR_400)


def _drop_unused_schemas(finished: dict[str, Any]) -> None:
    schemas = finished.get("components", {}).get("schemas", {})
    text = json.dumps(finished.get("paths", {}))
    for unused in ("HTTPValidationError", "ValidationError"):
        if f"#/components/schemas/{unused}" not in text:
            schemas.pop(unused, None)
