"""`/system/logs/{service}[/{job}]`: the jobs of a service and their logs, as OSCAR shapes them.

Status values are OSCAR's (`Pending`, `Running`, `Succeeded`, `Failed`, plus our `Cancelled`);
times are RFC 3339 in UTC. Our extra fields (attempts, exit code, reason, input key, nodes) are
added beside OSCAR's; its clients ignore them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from oscarpy.api.auth import current_principal, service_for
from oscarpy.api.errors import error_responses
from oscarpy.api.jobs import checked_name, engine_of
from oscarpy.api.schemas import ErrorBody
from oscarpy.auth.principal import Principal
from oscarpy.engine import JobView


def _manages_jobs(
    request: Request,
    service_name: str,
    principal: Annotated[Principal, Depends(current_principal)],
) -> None:
    """The service's owner and admins read and delete its jobs (see `services.access`)."""
    service_for(request, principal, service_name, "manage jobs of")


router = APIRouter(
    prefix="/system/logs",
    tags=["logs"],
    dependencies=[Depends(_manages_jobs)],
    responses=error_responses(401, 403, 404),
)

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


class JobInfo(BaseModel):
    status: str = Field(description="Pending, Running, Succeeded, Failed or Cancelled.")
    creation_time: str | None
    start_time: str | None
    finish_time: str | None
    attempts: int = 0
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    source: str = ""
    bucket: str | None = None
    key: str | None = None
    node: str | None = Field(
        None, description="The machine (Swarm node) that ran the latest attempt, once known."
    )
    nodes: list[str | None] = Field(
        default_factory=list, description="The machine of each attempt, first to latest."
    )


class JobsPage(BaseModel):
    jobs: dict[str, JobInfo]
    next_page: str = Field(description="Pass as ?page= for the next jobs; empty on the last.")
    remaining_jobs: int = Field(description="Jobs after this page.")


def _time(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else None


def job_info(view: JobView) -> dict[str, Any]:
    return {
        "status": view.status.oscar_name,
        "creation_time": _time(view.created_at),
        "start_time": _time(view.started_at),
        "finish_time": _time(view.finished_at),
        "attempts": view.attempts,
        "exit_code": view.exit_code,
        "reason": view.reason,
        "message": view.message,
        "source": view.source.value,
        "bucket": view.bucket,
        "key": view.key,
        "node": view.nodes[-1] if view.nodes else None,
        "nodes": list(view.nodes),
    }


def _offset(page: str) -> int:
    if not page:
        return 0
    # isdigit() alone accepts "¹" and other digits that int() refuses.
    if not (page.isascii() and page.isdigit()):
        raise _bad_page(page)
    return int(page)


def _bad_page(page: str) -> HTTPException:
    return HTTPException(400, detail=f"page {page!r} is not a page token from next_page")


@router.get("/{service_name}", response_model=JobsPage, summary="List a service's jobs")
def list_jobs(
    service_name: str,
    request: Request,
    page: str = Query("", description="The next_page of the previous answer."),
    limit: int = Query(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE),
) -> dict[str, Any]:
    """The service's jobs, newest first, a page at a time."""
    offset = _offset(page)
    views, total = engine_of(request).jobs(checked_name(service_name), offset, limit)
    remaining = max(0, total - offset - len(views))
    return {
        "jobs": {view.id: job_info(view) for view in views},
        "next_page": str(offset + len(views)) if remaining else "",
        "remaining_jobs": remaining,
    }


@router.get(
    "/{service_name}/{job_id}",
    response_class=PlainTextResponse,
    summary="Read a job's log",
    responses={200: {"content": {"text/plain": {}}}},
)
def read_log(
    service_name: str,
    job_id: str,
    request: Request,
    timestamps: bool = Query(False, description="Prefix each line with its RFC 3339 time."),
) -> str:
    """The log so far (readable while the job runs): the script's output and the platform's
    own lines, which start with `[oscar]`."""
    return engine_of(request).job_log(checked_name(service_name), job_id, timestamps)


@router.delete(
    "/{service_name}/{job_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a job and its log",
)
def delete_job(service_name: str, job_id: str, request: Request) -> Response:
    """A running job is stopped first."""
    engine_of(request).delete_job(checked_name(service_name), job_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/{service_name}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete jobs")
def delete_jobs(
    service_name: str,
    request: Request,
    all: bool = Query(False, description="Delete every job (running ones are stopped)."),
) -> Response:
    """Without `all`, only the succeeded jobs (as OSCAR)."""
    engine_of(request).delete_jobs(checked_name(service_name), everything=all)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{service_name}/{job_id}/retry",
    response_model=JobInfo,
    summary="Run a failed job again",
    responses={
        409: {"model": ErrorBody, "description": "The job is not Failed"},
    },
)
def retry_job(service_name: str, job_id: str, request: Request) -> dict[str, Any]:
    """Only a Failed job; it becomes Pending with a fresh retry budget."""
    return job_info(engine_of(request).retry(checked_name(service_name), job_id))
