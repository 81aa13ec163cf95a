"""`/system/services`: create, list, read, update and delete services, as OSCAR does.

Bodies are read as raw JSON and validated by `parse_service`, so that an invalid definition
gets OSCAR's 400 with the field named, rather than FastAPI's 422.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from oscarpy.api.auth import current_principal, service_for
from oscarpy.api.errors import error_responses
from oscarpy.api.openapi import DEFINITION_REF
from oscarpy.api.origin import require_json
from oscarpy.auth.principal import Principal
from oscarpy.services import access
from oscarpy.services.errors import ServiceDefinitionError
from oscarpy.services.model import Service, parse_service
from oscarpy.services.registry import ServiceRegistry

router = APIRouter(
    prefix="/system/services",
    tags=["services"],
    responses=error_responses(401),
)

Caller = Annotated[Principal, Depends(current_principal)]

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


@router.get("", response_model=list[Service], summary="List the services")
def list_services(request: Request, caller: Caller) -> list[dict[str, Any]]:
    """The services the caller may see (all for an admin; a user's own, the public ones and
    the restricted ones listing them); secret values blanked, provider secret keys `hidden`."""
    services = access.visible(caller, _registry(request).list())
    return [with_expose(access.shown_to(caller, service).to_json()) for service in services]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Service,
    summary="Create a service",
    openapi_extra=_SERVICE_BODY,
    responses=error_responses(400, 409),
)
async def create_service(request: Request, caller: Caller) -> JSONResponse:
    """Register a service and create its missing buckets and folders in the embedded store.

    Answers the created service with its token (OSCAR answers an empty body), and `warnings`:
    one line per key that was dropped (unknown) or that oscar-py cannot honour.
    """
    # The creator owns it: a user by their id, the admin's Basic credentials as `cluster_admin`.
    service = (await _definition(request)).model_copy(update={"owner": caller.user_id})
    created = await _in_thread(_registry(request).create, service)
    return JSONResponse(
        _answer(caller, created, service.warnings), status_code=status.HTTP_201_CREATED
    )


@router.put(
    "",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Update a service",
    openapi_extra=_SERVICE_BODY,
    responses={
        **error_responses(400, 403, 404),
        200: {
            "description": "Updated, with `warnings`: keys dropped or not honoured",
            "content": {"application/json": {"schema": {"$ref": DEFINITION_REF}}},
        },
    },
)
async def update_service(request: Request, caller: Caller) -> Response:
    """Replace a service's definition; its token and owner stay, and so do secrets sent back
    blank or as `hidden` (as GET shows them).

    Answers 204 as OSCAR does, or 200 with the service and its `warnings` when a key was
    dropped (unknown) or cannot be honoured, so that no setting is ignored unseen."""
    service = await _definition(request)
    await run_in_threadpool(service_for, request, caller, service.name, "change")
    updated = await _in_thread(_registry(request).update, service)
    if not service.warnings:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return JSONResponse(_answer(caller, updated, service.warnings))


@router.get(
    "/{service_name}",
    response_model=Service,
    summary="Read a service",
    responses=error_responses(403, 404),
)
def read_service(request: Request, service_name: str, caller: Caller) -> dict[str, Any]:
    shown = access.shown_to(caller, service_for(request, caller, service_name, "read"))
    return with_expose(shown.to_json())


@router.delete(
    "/{service_name}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a service",
    responses=error_responses(400, 403, 404),
)
def delete_service(
    request: Request,
    service_name: str,
    caller: Caller,
    delete_buckets: bool = Query(
        False,
        description="Also delete the service's buckets and their files (OSCAR always does); "
        "a bucket another service uses is kept.",
    ),
) -> Response:
    """Remove a service with its pending jobs and logs; its files stay unless asked."""
    registry = _registry(request)
    service_for(request, caller, service_name, "change")
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


def with_expose(data: dict[str, Any]) -> dict[str, Any]:
    """A service's JSON as OSCAR answers it: `expose` always there."""
    expose = data.get("expose")
    data["expose"] = {**UNEXPOSED, **expose} if isinstance(expose, dict) else dict(UNEXPOSED)
    return data


def _answer(caller: Principal, service: Service, warnings: list[str]) -> dict[str, Any]:
    """The service as GET shows it, with `warnings` (not a service key: returned directly)."""
    return {**with_expose(access.shown_to(caller, service).to_json()), "warnings": warnings}


async def _in_thread(function: Callable[[Service], Service], service: Service) -> Service:
    """Registry calls block on the DB; keep them off the event loop."""
    return await run_in_threadpool(function, service)
