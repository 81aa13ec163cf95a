"""The dashboard mounted at `/ui`: sign-in, the overview, and the service and storage pages."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from oscarpy.auth.buckets import Action, BucketAccessTable, allows
from oscarpy.auth.credentials import AdminCredentials, load_or_create_session_secret
from oscarpy.auth.revocations import Revocations
from oscarpy.auth.sessions import Session, SessionCodec
from oscarpy.auth.throttle import Throttle, Throttled, client_address
from oscarpy.config import Settings
from oscarpy.engine import JobStatus, activity
from oscarpy.services import access
from oscarpy.web import charts, services, signin, storage
from oscarpy.web.dashboard import (
    _HERE,
    PREFIX,
    Checked,
    DashboardRoute,
    SignedIn,
    engine_or_none,
    redirect,
    registry,
    render,
    safe_next,
    sessions,
    store,
)

router = APIRouter(prefix=PREFIX, route_class=DashboardRoute, include_in_schema=False)


def mount_dashboard(app: FastAPI, admin: AdminCredentials) -> None:
    """Serve the dashboard at `/ui` of `app`, with sessions for `admin`."""
    settings: Settings = app.state.settings
    app.state.sessions = SessionCodec(
        admin,
        load_or_create_session_secret(settings.data_dir),
        Revocations(app.state.database),
        secure_cookie=settings.secure_cookie,
    )
    app.include_router(router)
    app.include_router(signin.router)
    app.include_router(services.router)
    app.include_router(storage.router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=_HERE / "static"), name="ui-static")


@router.get("/login")
def login_page(request: Request, next: str = PREFIX) -> Response:
    if sessions(request).from_request(request) is not None:
        return redirect(request, safe_next(next))
    context = {"next": safe_next(next), "username": "", "issuers": signin.issuers(request)}
    return render(request, "login.html", context)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    username = str(form.get("username") or "")
    password = str(form.get("password") or "")
    target = safe_next(str(form.get("next") or PREFIX))
    codec = sessions(request)
    throttle: Throttle = request.app.state.throttle
    try:
        signed_in = throttle.attempt(
            client_address(request.scope),
            username,
            "dashboard",
            lambda: codec.check_password(username, password),
        )
    except Throttled as error:
        context = {
            "next": target,
            "username": username,
            "error": f"{error}.".capitalize(),
            "issuers": signin.issuers(request),
        }
        answer = render(request, "login.html", context, status=429)
        answer.headers["Retry-After"] = error.retry_after_header
        return answer
    if not signed_in:
        context = {
            "next": target,
            "username": username,
            "error": "Wrong user or password.",
            "issuers": signin.issuers(request),
        }
        return render(request, "login.html", context, status=401)
    _session, cookie = codec.issue()
    response = redirect(request, target)
    codec.set_cookie(response, cookie, request)
    return response


@router.post("/logout")
def logout(request: Request, session: Checked) -> Response:
    codec = sessions(request)
    codec.revoke(session)
    response = redirect(request, f"{PREFIX}/login", "Signed out.")
    codec.clear_cookie(response, request)
    return response


@router.get("")
async def overview(request: Request, session: SignedIn, window: str = "1h") -> Response:
    chosen = activity.WINDOWS.get(window, activity.WINDOWS["1h"])
    if not session.admin:
        return render(request, "overview.html", await run_in_threadpool(_own, request, session))
    context = await run_in_threadpool(_overview, request, chosen)
    return render(request, "overview.html", context)


def _own(request: Request, session: Session) -> dict[str, Any]:
    """A user's overview: their services and buckets; the platform's jobs, capacity and
    activity are the admins'."""
    who = session.principal
    readable = BucketAccessTable(store(request).database).get_many(store(request).list_buckets())
    return {
        "services_count": len(access.visible(who, registry(request).list())),
        "buckets_count": sum(allows(rule, who, Action.READ) for rule in readable.values()),
        "objects_count": None,
        "windows": activity.WINDOWS.values(),
        "window": activity.WINDOWS["1h"],
        "load": None,
        "jobs": None,
    }


def _overview(request: Request, window: activity.Window) -> dict[str, Any]:
    service_list = registry(request).list()
    buckets, objects = store(request).counts()
    context: dict[str, Any] = {
        "services_count": len(service_list),
        "buckets_count": buckets,
        "objects_count": objects,
        "windows": activity.WINDOWS.values(),
        "window": window,
        "load": activity.host_load(),
        "jobs": None,
    }
    running_engine = engine_or_none(request)
    if running_engine is None:
        return context
    counts = running_engine.ledger.count_by_status()
    context["jobs"] = {status.value: counts.get(status, 0) for status in JobStatus}
    database = running_engine.ledger.database
    context["slots"] = activity.finished_over_time(database, window)
    cpu, memory = activity.reserved(service_list, activity.running_by_service(database))
    capacity = running_engine.dispatcher.capacity
    context["cpu"] = activity.Usage(cpu, capacity.cpu)
    context["memory"] = activity.Usage(memory, capacity.memory)
    context["nodes"] = running_engine.nodes()
    scaler = running_engine.scaler
    context["scaling"] = list(reversed(scaler.events))[:20] if scaler is not None else None
    context["chart"] = charts.bar_chart(context["slots"])
    context.update(charts.timing_context(database, window))
    return context
