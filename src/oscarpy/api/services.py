"""`/system/services`: create, list, read, update and delete services, as OSCAR does.

Bodies are read as raw JSON and validated by `parse_service`, so that an invalid definition
gets OSCAR's 400 with the field named, rather than FastAPI's 422.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from oscarpy.api.auth import require_admin
from oscarpy.api.errors import error_responses
from oscarpy.api.openapi import DEFINITION_REF
from oscarpy.api.origin import require_json
from oscarpy.services.errors import ServiceDefinitionError, ServiceNotFound
from oscarpy.services.model import Service, is_service_name, parse_service
from oscarpy.services.registry import ADMIN_OWNER, ServiceRegistry

router = APIRouter(
    prefix="/system/services",
    tags=["services"],
    dependencies=[Depends(require_admin)],
    responses=error_responses(401),
)

_SERVICE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": DEFINITION_REF}}},
    }
}


def _registry(request: Request) -> ServiceRegistry:
    registry: ServiceRegistry = request.app.state.registry
    return registry


async def _definition(request: Request) -> Service:
    require_json(request)
    body = await request.body()
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ServiceDefinitionError("the body is not a JSON service definition") from None
    return parse_service(data)


def _found(registry: ServiceRegistry, name: str) -> Service:
    # A name no service can have is absent without asking the DB (which may refuse odd bytes).
    service = registry.get(name) if is_service_name(name) else None
    if service is None:
        raise ServiceNotFound(name)
    return service


@router.get("", response_model=list[Service], summary="List the services")
def list_services(request: Request) -> list[dict[str, Any]]:
    """Every service; secret values blanked, provider secret keys shown as `hidden`."""
    return [shown(service) for service in _registry(request).list()]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Service,
    summary="Create a service",
    openapi_extra=_SERVICE_BODY,
    responses=error_responses(400, 409),
)
async def create_service(request: Request) -> JSONResponse:
    """Register a service and create its missing buckets and folders in the embedded store.

    Answers the created service with its token (OSCAR answers an empty body), and `warnings`:
    one line per key that was dropped (unknown) or that oscar-py cannot honour.
    """
    # The Basic credentials are the admin's, whose services OSCAR owns as `cluster_admin`.
    service = (await _definition(request)).model_copy(update={"owner": ADMIN_OWNER})
    created = await _in_thread(_registry(request).create, service)
    return JSONResponse(_answer(created, service.warnings), status_code=status.HTTP_201_CREATED)


@router.put(
    "",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Update a service",
    openapi_extra=_SERVICE_BODY,
    responses={
        **error_responses(400, 404),
        200: {
            "description": "Updated, with `warnings`: keys dropped or not honoured",
            "content": {"application/json": {"schema": {"$ref": DEFINITION_REF}}},
        },
    },
)
async def update_service(request: Request) -> Response:
    """Replace a service's definition; its token and owner stay, and so do secrets sent back
    blank or as `hidden` (as GET shows them).

    Answers 204 as OSCAR does, or 200 with the service and its `warnings` when a key was
    dropped (unknown) or cannot be honoured, so that no setting is ignored unseen."""
    service = await _definition(request)
    updated = await _in_thread(_registry(request).update, service)
    if not service.warnings:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return JSONResponse(_answer(updated, service.warnings))


@router.get(
    "/{service_name}",
    response_model=Service,
    summary="Read a service",
    responses=error_responses(404),
)
def read_service(request: Request, service_name: str) -> dict[str, Any]:
    return shown(_found(_registry(request), service_name))


@router.delete(
    "/{service_name}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a service",
    responses=error_responses(400, 404),
)
def delete_service(
    request: Request,
    service_name: str,
    delete_buckets: bool = Query(
        False,
        description="Also delete the service's buckets and their files (OSCAR always does); "
        "a bucket another service uses is kept.",
    ),
) -> Response:
    """Remove a service with its pending jobs and logs; its files stay unless asked."""
    registry = _registry(request)
    _found(registry, service_name)
    registry.delete(service_name, delete_buckets=delete_buckets)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


#: OSCAR's answers always carry `expose`, zero-valued for a service that exposes nothing (Go
#: serialises the empty struct); its dashboard reads `expose.max_scale` of every service.
UNEXPOSED: dict[str, Any] = {
    "min_scale": 0,
    "max_scale": 0,
    "cpu_threshold": 0,
    "rewrite_target": False,
    "default_command": False,
    "set_auth": False,
    "health_path": "",
}


def shown(service: Service) -> dict[str, Any]:
    """The service as OSCAR answers it: secrets redacted, `expose` always there."""
    data = service.redacted().to_json()
    expose = data.get("expose")
    data["expose"] = {**UNEXPOSED, **expose} if isinstance(expose, dict) else dict(UNEXPOSED)
    return data


def _answer(service: Service, warnings: list[str]) -> dict[str, Any]:
    """The service as GET shows it, with `warnings` (not a service key: returned directly)."""
    return {**shown(service), "warnings": warnings}


async def _in_thread(function: Callable[[Service], Service], service: Service) -> Service:
    """Registry calls block on the DB; keep them off the event loop."""
    return await run_in_threadpool(function, service)
