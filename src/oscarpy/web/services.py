"""Service pages: the list with live job counts, the form, FDL/JSON import, invocation, jobs
and their logs. Every change goes through the service registry or the job engine, as the REST
API's do."""

from __future__ import annotations

import base64
import json
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from oscarpy.auth.sessions import Session
from oscarpy.engine import JobStatus, JobView, activity
from oscarpy.services import access
from oscarpy.services.errors import ServiceDefinitionError, ServiceExists, ServiceNotFound
from oscarpy.services.model import Service, is_service_name, parse_fdl_text, parse_service
from oscarpy.web import charts
from oscarpy.web.dashboard import (
    PREFIX,
    Checked,
    DashboardError,
    DashboardRoute,
    SignedIn,
    engine,
    engine_or_none,
    redirect,
    registry,
    render,
)
from oscarpy.web.forms import ServiceForm

router = APIRouter(prefix=PREFIX, route_class=DashboardRoute, include_in_schema=False)

MAX_DEFINITION_BYTES = 1024 * 1024
MAX_INVOCATION_BYTES = 64 * 1024 * 1024
JOBS_SHOWN = 200
_SOURCES = {"invocation": "request body", "sync": "request body (synchronous run)"}


def _found(
    request: Request, name: str, session: Session, action: access.Action = "read"
) -> Service:
    """The service `name`, if the session's user may `action` it (404, else 403)."""
    service = registry(request).get(name) if is_service_name(name) else None
    if service is None:
        raise ServiceNotFound(name)
    return access.require(session.principal, service, action)


def _visible(request: Request, session: Session) -> list[Service]:
    return access.visible(session.principal, registry(request).list())


def _counts(request: Request, name: str) -> dict[str, int]:
    running_engine = engine_or_none(request)
    counts = running_engine.counts(name) if running_engine else {}
    return {status.value: counts.get(status, 0) for status in JobStatus}


def _job_json(service: str, job: JobView) -> dict[str, Any]:
    if job.key is not None:
        source = f"{job.bucket}/{job.key}"
    else:
        source = _SOURCES.get(job.source.value, job.source.value)
    finished = job.finished_at
    return {
        "id": job.id,
        "status": job.status.value,
        "status_label": job.status.oscar_name,
        "input": source,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": finished.isoformat() if finished else None,
        "attempts": job.attempts,
        "exit_code": job.exit_code,
        "message": job.message or "",
        "url": f"{PREFIX}/services/{service}/jobs/{job.id}",
        "finished": job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED),
    }


# -- list -------------------------------------------------------------------------------------


@router.get("/services")
async def list_page(request: Request, session: SignedIn) -> Response:
    def gather() -> list[dict[str, Any]]:
        return [
            {"service": service, "counts": _counts(request, service.name)}
            for service in _visible(request, session)
        ]

    rows = await run_in_threadpool(gather)
    return render(request, "services.html", {"rows": rows})


@router.get("/data/services")
async def list_data(request: Request, session: SignedIn) -> Response:
    def gather() -> dict[str, Any]:
        names = [service.name for service in _visible(request, session)]
        return {"services": {name: _counts(request, name) for name in names}}

    return _json(await run_in_threadpool(gather))


# -- create, edit, import ---------------------------------------------------------------------


@router.get("/services/new")
def new_page(request: Request, _session: SignedIn) -> Response:
    return _form_page(request, ServiceForm().with_blank_rows(), None)


@router.post("/services/new")
async def create(request: Request, session: Checked) -> Response:
    form = ServiceForm.from_submission(await request.form())
    try:
        service = parse_service(form.definition())
        service = service.model_copy(update={"owner": session.principal.user_id})
        created = await run_in_threadpool(registry(request).create, service)
    except (ValueError, ServiceDefinitionError) as error:
        return _form_page(request, form, None, error=str(error), status=400)
    except ServiceExists:
        message = f"A service named {form.name} exists already; choose another name."
        return _form_page(request, form, None, error=message, status=409)
    return _saved(request, created.name, f"Service {created.name} created.", service.warnings)


@router.get("/services/{name}/edit")
async def edit_page(request: Request, name: str, session: SignedIn) -> Response:
    service = await run_in_threadpool(_found, request, name, session, "change")
    return _form_page(request, ServiceForm.of(service).with_blank_rows(), service)


@router.post("/services/{name}/edit")
async def edit(request: Request, name: str, session: Checked) -> Response:
    stored = await run_in_threadpool(_found, request, name, session, "change")
    form = ServiceForm.from_submission(await request.form())
    form.name = stored.name  # the name is the service's identity; it cannot change here
    try:
        service = parse_service(form.definition(stored))
        await run_in_threadpool(registry(request).update, service)
    except (ValueError, ServiceDefinitionError) as error:
        return _form_page(request, form, stored, error=str(error), status=400)
    return _saved(request, name, f"Service {name} saved.", service.warnings)


def _saved(request: Request, name: str, text: str, warnings: list[str]) -> Response:
    """To the service's page, saying what of the definition was dropped or is not honoured."""
    if not warnings:
        return redirect(request, f"{PREFIX}/services/{name}", text)
    return redirect(
        request, f"{PREFIX}/services/{name}", f"{text} Warning: {'; '.join(warnings)}.", "warning"
    )


def _form_page(
    request: Request,
    form: ServiceForm,
    stored: Service | None,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    if not form.inputs:
        form.inputs = ServiceForm().with_blank_rows().inputs
    if not form.outputs:
        form.outputs = ServiceForm().with_blank_rows().outputs
    context = {"form": form, "stored": stored, "error": error}
    return render(request, "service_form.html", context, status=status)


@router.post("/services/import")
async def import_definition(request: Request, session: Checked) -> Response:
    upload = (await request.form()).get("definition")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise DashboardError("Choose an FDL (YAML) or JSON file to import.")
    content = await upload.read(MAX_DEFINITION_BYTES + 1)
    if len(content) > MAX_DEFINITION_BYTES:
        raise DashboardError("That file is larger than 1 MiB; a service definition is not.")
    services = await run_in_threadpool(_parse_definition, upload.filename, content)
    created, updated = await run_in_threadpool(_apply, request, services, session)
    parts = []
    if created:
        parts.append("created " + ", ".join(created))
    if updated:
        parts.append("updated " + ", ".join(updated))
    text = f"Imported {upload.filename}: " + "; ".join(parts) + "."
    warnings = [f"{service.name}: {line}" for service in services for line in service.warnings]
    if warnings:
        text += f" Warning: {'; '.join(warnings)}."
    kind = "warning" if warnings else "notice"
    if len(services) == 1:
        return redirect(request, f"{PREFIX}/services/{services[0].name}", text, kind)
    return redirect(request, f"{PREFIX}/services", text, kind)


def _parse_definition(filename: str, content: bytes) -> list[Service]:
    try:
        text = content.decode()
    except UnicodeDecodeError:
        raise DashboardError(f"{filename} is not a text file.") from None
    if filename.lower().endswith(".json") or text.lstrip().startswith(("{", "[")):
        try:
            data = json.loads(text)
        except ValueError as error:
            raise DashboardError(f"{filename} is not valid JSON: {error}") from None
        items = data if isinstance(data, list) else [data]
        return [parse_service(item, where=filename) for item in items]
    # An uploaded FDL has no directory of its own on this server: its scripts must be inline,
    # and the server reads none of its own files for it.
    return [service for _cluster, service in parse_fdl_text(text, filename)]


def _apply(
    request: Request, services: list[Service], session: Session
) -> tuple[list[str], list[str]]:
    created: list[str] = []
    updated: list[str] = []
    for service in services:
        stored = registry(request).get(service.name)
        if stored is None:
            owned = service.model_copy(update={"owner": session.principal.user_id})
            registry(request).create(owned)
            created.append(service.name)
        else:
            access.require(session.principal, stored, "change")
            registry(request).update(service.model_copy(update={"owner": stored.owner}))
            updated.append(service.name)
    return created, updated


# -- one service ------------------------------------------------------------------------------


@router.get("/services/{name}")
async def service_page(
    request: Request, name: str, session: SignedIn, window: str = "1h"
) -> Response:
    chosen = activity.WINDOWS.get(window, activity.WINDOWS["1h"])

    def gather() -> dict[str, Any]:
        service = _found(request, name, session)
        # Jobs and their logs are the owner's and admins' (services/access.py).
        may_manage = access.allows(session.principal, service, "manage jobs of")
        running_engine = engine_or_none(request) if may_manage else None
        jobs: list[dict[str, Any]] = []
        total = 0
        context: dict[str, Any] = {"windows": activity.WINDOWS.values(), "window": chosen}
        if running_engine is not None:
            views, total = running_engine.jobs(name, 0, JOBS_SHOWN)
            jobs = [_job_json(name, view) for view in views]
            database = running_engine.ledger.database
            slots = activity.finished_over_time(database, chosen, service=name)
            context["chart"] = charts.bar_chart(slots)
            context.update(charts.timing_context(database, chosen, service=name))
        return {
            **context,
            "service": service,
            "counts": _counts(request, name),
            "jobs": jobs,
            "total": total,
            "shown": JOBS_SHOWN,
            "may_change": access.allows(session.principal, service, "change"),
            "may_manage": may_manage,
        }

    return render(request, "service.html", await run_in_threadpool(gather))


@router.get("/data/services/{name}/jobs")
async def jobs_data(request: Request, name: str, session: SignedIn) -> Response:
    def gather() -> dict[str, Any]:
        _found(request, name, session, "manage jobs of")
        views, total = engine(request).jobs(name, 0, JOBS_SHOWN)
        return {
            "jobs": [_job_json(name, view) for view in views],
            "total": total,
            "counts": _counts(request, name),
        }

    return _json(await run_in_threadpool(gather))


@router.get("/services/{name}/delete")
async def delete_page(request: Request, name: str, session: SignedIn) -> Response:
    service = await run_in_threadpool(_found, request, name, session, "change")
    buckets = sorted({path.bucket for path in service.embedded_paths()})
    return render(request, "service_delete.html", {"service": service, "buckets": buckets})


@router.post("/services/{name}/delete")
async def delete(request: Request, name: str, session: Checked) -> Response:
    form = await request.form()
    delete_buckets = form.get("delete_buckets") == "on"
    await run_in_threadpool(_found, request, name, session, "change")
    await run_in_threadpool(registry(request).delete, name, delete_buckets)
    text = f"Service {name} deleted" + (" with its buckets." if delete_buckets else ".")
    return redirect(request, f"{PREFIX}/services", text)


@router.post("/services/{name}/invoke")
async def invoke(request: Request, name: str, session: Checked) -> Response:
    """An asynchronous invocation (`/job`): the text or file becomes the job's input."""
    await run_in_threadpool(_found, request, name, session, "invoke")
    form = await request.form()
    upload = form.get("file")
    if isinstance(upload, UploadFile) and upload.filename:
        content = await upload.read(MAX_INVOCATION_BYTES + 1)
    else:
        text = form.get("text")
        content = (text if isinstance(text, str) else "").replace("\r\n", "\n").encode()
    if len(content) > MAX_INVOCATION_BYTES:
        raise DashboardError("The input is larger than 64 MiB; upload it to storage instead.")
    running_engine = engine(request)
    # The engine base64-decodes a body that is not JSON (OSCAR's rule); encoding it here keeps
    # exactly the bytes given, whatever they look like.
    job_id = await run_in_threadpool(running_engine.submit, name, base64.b64encode(content))
    return redirect(request, f"{PREFIX}/services/{name}", f"Job {job_id} queued for {name}.")


# -- jobs -------------------------------------------------------------------------------------


@router.get("/services/{name}/jobs/{job_id}")
async def job_page(request: Request, name: str, job_id: str, session: SignedIn) -> Response:
    def gather() -> dict[str, Any]:
        _found(request, name, session, "manage jobs of")
        running_engine = engine(request)
        view = running_engine.job(name, job_id)
        return {
            "service_name": name,
            "job": _job_json(name, view),
            "view": view,
            "log": running_engine.job_log(name, job_id),
            "attempts": running_engine.attempts(name, job_id),
        }

    return render(request, "job.html", await run_in_threadpool(gather))


@router.get("/data/services/{name}/jobs/{job_id}")
async def job_data(
    request: Request,
    name: str,
    job_id: str,
    session: SignedIn,
    offset: int = 0,
) -> Response:
    """The job and its log from character `offset` on, for following a running job."""

    def gather() -> dict[str, Any]:
        _found(request, name, session, "manage jobs of")
        running_engine = engine(request)
        view = running_engine.job(name, job_id)
        log = running_engine.job_log(name, job_id)
        start = offset if 0 <= offset <= len(log) else 0
        return {
            "job": _job_json(name, view),
            "log": log[start:],
            "offset": len(log),
            "reset": start != offset,
        }

    return _json(await run_in_threadpool(gather))


@router.post("/services/{name}/jobs/{job_id}/retry")
async def retry(request: Request, name: str, job_id: str, session: Checked) -> Response:
    await run_in_threadpool(_found, request, name, session, "manage jobs of")
    await run_in_threadpool(engine(request).retry, name, job_id)
    return redirect(request, f"{PREFIX}/services/{name}/jobs/{job_id}", "The job runs again.")


@router.post("/services/{name}/jobs/{job_id}/delete")
async def delete_job(request: Request, name: str, job_id: str, session: Checked) -> Response:
    await run_in_threadpool(_found, request, name, session, "manage jobs of")
    await run_in_threadpool(engine(request).delete_job, name, job_id)
    return redirect(request, f"{PREFIX}/services/{name}", f"Job {job_id} deleted.")


@router.post("/services/{name}/jobs/delete-succeeded")
async def delete_succeeded(request: Request, name: str, session: Checked) -> Response:
    await run_in_threadpool(_found, request, name, session, "manage jobs of")
    removed = await run_in_threadpool(engine(request).delete_jobs, name)
    plural = "" if removed == 1 else "s"
    return redirect(
        request, f"{PREFIX}/services/{name}", f"{removed} succeeded job{plural} deleted."
    )


def _json(data: dict[str, Any]) -> Response:
    return Response(
        json.dumps(data),
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )
