"""`PUT /system/config`: OSCAR's way to set the image allow-list (`allowed_image_repositories`).

The answer is the list as stored, as OSCAR answers; an empty list allows every image."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request

from oscarpy.api.auth import require_admin
from oscarpy.api.errors import error_responses
from oscarpy.api.origin import require_json
from oscarpy.services.errors import ServiceDefinitionError
from oscarpy.services.registry import ServiceRegistry

router = APIRouter(
    prefix="/system",
    tags=["system"],
    dependencies=[Depends(require_admin)],
    responses=error_responses(400, 401),
)


@router.put("/config", summary="Set the image allow-list", response_model=list[str])
async def update_config(request: Request) -> list[str]:
    """`{"allowed_image_repositories": ["ghcr.io/grycap/", ...]}`: from now on a service may
    only be created with (or changed to) an image starting with one of them."""
    require_json(request)
    try:
        body: Any = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise ServiceDefinitionError("the body is not JSON") from None
    entries = body.get("allowed_image_repositories") if isinstance(body, dict) else None
    if entries is None:
        entries = []
    if not isinstance(entries, list) or not all(isinstance(item, str) for item in entries):
        raise ServiceDefinitionError(
            "allowed_image_repositories: give a list of image name prefixes"
        )
    registry: ServiceRegistry = request.app.state.registry
    return registry.allowed_images.set(entries)
