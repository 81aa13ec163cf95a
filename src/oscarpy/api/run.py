"""`POST /run/{service}`: synchronous invocation, answered from the service's warm containers.

The body is streamed to disk (never held whole in memory) up to `run_body_limit`; the script
runs while the client waits; its answer is streamed back. Every request is a job of source
`run` (shown as `sync`) whose id is in the `X-Oscar-Job-Id` header, so its log is at
`/system/logs/{service}/{id}`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from oscarpy.api.auth import SERVICE_AUTH_DOCUMENTATION, require_invoker
from oscarpy.api.bodies import BodyLimit, save_body
from oscarpy.api.errors import error_responses
from oscarpy.api.jobs import checked_name
from oscarpy.api.schemas import ErrorBody
from oscarpy.engine import AttemptOutcome, OutcomeKind
from oscarpy.engine.run import (
    Answer,
    Cancel,
    Runner,
    iterate_answer,
)

router = APIRouter(tags=["run"])

BINARY = "application/octet-stream"
JOB_HEADER = "X-Oscar-Job-Id"
IN_MEMORY_ANSWER = 1024 * 1024
"""Answers up to this size are sent in one piece; larger ones are streamed."""
CONCURRENT_RUNS = 256
"""Threads that may wait on scripts at once (their own pool, so that `/run` load never starves
the other routes of the default thread pool)."""


class RunFailed(BaseModel):
    detail: str = Field(description="How the job ended, and its id.")
    job_id: str = Field(description="The job; its whole log is at /system/logs/{service}/{id}.")
    log_tail: str = Field(description="The last lines of the job's log.")


def status_of(outcome: AttemptOutcome) -> int:
    if outcome.kind is OutcomeKind.SUCCEEDED:
        return 200
    if outcome.reason == "deleted":
        return 409
    if outcome.reason == "timeout":
        return 504
    if outcome.kind is OutcomeKind.SCRIPT_FAILED or outcome.reason == "oom":
        return 500
    return 503


def _limiter(request: Request) -> anyio.CapacityLimiter:
    limiter: anyio.CapacityLimiter | None = getattr(request.app.state, "run_limiter", None)
    if limiter is None:
        limiter = anyio.CapacityLimiter(CONCURRENT_RUNS)
        request.app.state.run_limiter = limiter
    return limiter


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


@router.post(
    "/run/{service_name}",
    summary="Invoke a service synchronously",
    dependencies=SERVICE_AUTH_DOCUMENTATION,
    response_class=Response,
    responses={
        200: {
            "description": "base64 of the single output file, base64 of a zip of several, or "
            "the script's output text when it wrote none (raw bytes with "
            "`Accept: application/octet-stream`).",
            "content": {"text/plain": {}, BINARY: {}},
        },
        **error_responses(400, 401, 404),
        409: {
            "model": RunFailed,
            "description": "The job was deleted (with its service, or all jobs) while its "
            "script ran: the script was stopped.",
        },
        413: {"model": ErrorBody, "description": "The body is larger than the limit."},
        500: {"model": RunFailed, "description": "The script failed (non-zero exit, OOM)."},
        503: {"model": RunFailed, "description": "No warm container could run the request."},
        504: {"model": RunFailed, "description": "The script ran past the service's timeout."},
    },
    openapi_extra={
        "requestBody": {
            "description": "The script's input: JSON as it is, anything else base64 (decoded "
            "before the script sees it), or raw bytes with Content-Type: application/"
            "octet-stream.",
            "content": {"application/json": {}, "text/plain": {}, BINARY: {}},
        }
    },
)
async def run_service(service_name: str, request: Request) -> Response:
    """Run the service's script on the request body in a warm container and answer with its
    result; the request is recorded as a job (source `sync`) with its log."""
    await anyio.to_thread.run_sync(require_invoker, request, service_name)
    runner: Runner = request.app.state.runner
    path = runner.new_body_path()
    try:
        await save_body(request, path, BodyLimit(runner.settings.run_body_limit, "run_body_limit"))
        cancel = Cancel()
        invoke = functools.partial(
            runner.invoke,
            checked_name(service_name),
            path,
            binary=_media_type(request.headers.get("content-type")) == BINARY,
            cancel=cancel,
        )
        answer = await _invoke_watching(request, invoke, cancel)
    finally:
        path.unlink(missing_ok=True)
    return _respond(answer, binary=BINARY in request.headers.get("accept", "").lower())


async def _invoke_watching(
    request: Request, invoke: Callable[[], Answer], cancel: Cancel
) -> Answer:
    """`invoke` in a thread, cancelled if the client hangs up meanwhile; its exceptions are
    raised as they are (not in a task group's ExceptionGroup), for the error table."""
    failure: Exception | None = None
    async with anyio.create_task_group() as watching:
        watching.start_soon(_cancel_when_disconnected, request, cancel)
        try:
            answer = await anyio.to_thread.run_sync(invoke, limiter=_limiter(request))
        except Exception as error:
            failure = error
        watching.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return answer


async def _cancel_when_disconnected(request: Request, cancel: Cancel) -> None:
    """A client that hangs up while its script runs stops the script: nobody is left to read
    its answer. (Once the body is read, the server's next message is the disconnect.)"""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    await anyio.to_thread.run_sync(cancel)


def _respond(answer: Answer, *, binary: bool) -> Response:
    headers = {JOB_HEADER: answer.job_id}
    cleanup = BackgroundTask(answer.discard)
    if not answer.succeeded:
        failed = RunFailed(
            detail=f"{answer.outcome.message} (job {answer.job_id})",
            job_id=answer.job_id,
            log_tail=answer.log_tail,
        )
        return JSONResponse(
            failed.model_dump(),
            status_code=status_of(answer.outcome),
            headers=headers,
            background=cleanup,
        )
    media_type = BINARY if binary else "text/plain; charset=utf-8"
    if answer.file is None or answer.file.stat().st_size <= IN_MEMORY_ANSWER:
        content = b"".join(iterate_answer(answer, binary=binary))
        return Response(content, media_type=media_type, headers=headers, background=cleanup)
    return StreamingResponse(
        iterate_answer(answer, binary=binary),
        media_type=media_type,
        headers=headers,
        background=cleanup,
    )
