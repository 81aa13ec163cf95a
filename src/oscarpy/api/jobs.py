"""`POST /job/{service}` (asynchronous invocation) and `POST /system/services/{name}/reconcile`.

The engine's and storage's errors are answered by `api/errors.py`, with `oscarpy/errors.py`'s
statuses.
"""

from __future__ import annotations

import functools
from typing import Any

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from oscarpy.api.auth import SERVICE_AUTH_DOCUMENTATION, require_admin, require_invoker
from oscarpy.api.bodies import BodyLimit, save_body
from oscarpy.api.errors import error_responses
from oscarpy.api.schemas import ErrorBody
from oscarpy.engine import Engine
from oscarpy.services.errors import ServiceNotFound
from oscarpy.services.model import is_service_name

router = APIRouter(tags=["jobs"])


class JobCreated(BaseModel):
    job_id: str = Field(description="Id of the job; its log is at /system/logs/{service}/{id}.")


class Reconciled(BaseModel):
    created: int = Field(description="Jobs created for objects that had none.")


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def checked_name(name: str) -> str:
    if not is_service_name(name):
        raise ServiceNotFound(name)
    return name


@router.post(
    "/job/{service_name}",
    status_code=status.HTTP_201_CREATED,
    response_model=JobCreated,
    summary="Invoke a service asynchronously",
    dependencies=SERVICE_AUTH_DOCUMENTATION,
    responses={
        **error_responses(401, 404),
        403: {"model": ErrorBody, "description": "A token's event names another object."},
        413: {"model": ErrorBody, "description": "The body is larger than the limit."},
        201: {"headers": {"Location": {"description": "The job's log."}}},
    },
)
async def submit_job(service_name: str, request: Request, response: Response) -> dict[str, Any]:
    """Run the service once: a MinIO/S3 event body names an object to process (with the
    service's token, only an object under one of its inputs); any other body is the input
    itself (JSON as-is, anything else base64-decoded). The job is recorded before this answers
    (OSCAR returns no id; we return it, still with 201)."""
    caller = await run_in_threadpool(require_invoker, request, service_name)
    as_admin = caller is not None and caller.admin
    engine = engine_of(request)
    limit = BodyLimit(request.app.state.settings.job_body_limit, "job_body_limit")
    path = engine.new_body_path()
    try:
        await save_body(request, path, limit)
        submit = functools.partial(engine.submit, inputs_only=not as_admin)
        job_id = await run_in_threadpool(submit, checked_name(service_name), path)
    finally:
        path.unlink(missing_ok=True)
    response.headers["Location"] = f"/system/logs/{service_name}/{job_id}"
    return {"job_id": job_id}


@router.post(
    "/system/services/{service_name}/reconcile",
    response_model=Reconciled,
    summary="Create jobs for existing objects that have none",
    dependencies=[Depends(require_admin)],
    responses=error_responses(401, 404),
)
def reconcile(service_name: str, request: Request) -> dict[str, int]:
    """List the service's input paths and create a job for each object version without one:
    files that were in the bucket before the service existed, or events an external storage
    never sent."""
    return {"created": engine_of(request).reconcile(checked_name(service_name))}
