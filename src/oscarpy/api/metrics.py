"""`GET /metrics` (Prometheus), OSCAR's usage routes `/system/metrics[...]`, and the middleware
that reports every `/job` and `/run` request to the request log and the metrics.

`/metrics` takes the admin's credentials or `Authorization: Bearer <OSCAR_METRICS_TOKEN>`, so
that Prometheus never holds the admin's password.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oscarpy.api.auth import (
    METRICS_AUTH_DOCUMENTATION,
    is_admin,
    parse_basic,
    parse_bearer,
    require_admin,
    secrets_equal,
    unauthorized,
)
from oscarpy.api.errors import error_responses
from oscarpy.auth.sessions import session_from_api_request
from oscarpy.config import Settings
from oscarpy.db import utcnow
from oscarpy.observability import Observability, RequestRecord
from oscarpy.observability.usage import METRIC_KEYS, UnsupportedMetric, UsagePeriod, breakdown_csv

router = APIRouter()

DEFAULT_RANGE = timedelta(hours=24)
_INVOCATIONS = {"/run/": "sync", "/job/": "async"}
_UNKNOWN_SERVICE = "other"
"""The `/run` latency label of requests that named no service they could call (401, 404): a
client cannot grow the label set by inventing names."""


def observability_of(request: Request) -> Observability:
    found: Observability | None = getattr(request.app.state, "observability", None)
    if found is None:
        raise HTTPException(404, "this server keeps no metrics")
    return found


# -- Prometheus ---------------------------------------------------------------------------


@router.get(
    "/metrics",
    tags=["metrics"],
    summary="Metrics in the Prometheus text format",
    dependencies=METRICS_AUTH_DOCUMENTATION,
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "The exposition format, 0.0.4."},
        **error_responses(401),
        404: {"description": "Metrics are off (OSCAR_METRICS=false)."},
    },
)
def prometheus_metrics(request: Request) -> Response:
    """Jobs, attempts, queue and run times, `/run` and S3 requests, warm containers, buckets
    and free space; see docs/operations.md for every name."""
    settings: Settings = request.app.state.settings
    token = parse_bearer(request.headers.get("authorization", ""))
    expected = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    allowed = (
        token is not None and expected is not None and secrets_equal(token, expected)
    ) or is_admin(request, request.app.state.admin)
    if not allowed:
        raise unauthorized()
    metrics = observability_of(request).metrics
    if metrics is None:
        raise HTTPException(404, "metrics are off on this server (OSCAR_METRICS=false)")
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_PLAIN_0_0_4)


# -- OSCAR's usage metrics ----------------------------------------------------------------


def parse_moment(value: str | None, name: str) -> datetime | None:
    if value is None or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
        if moment.tzinfo is None:
            raise HTTPException(400, f"invalid {name} timestamp {value!r}: it needs a time zone")
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):  # overflow: a zone pushing year 1 or 9999 out of range
        raise HTTPException(400, f"invalid {name} timestamp {value!r}: use RFC 3339") from None


def time_range(start: str | None, end: str | None) -> tuple[datetime, datetime]:
    """OSCAR's range: `end` defaults to now, `start` to a day before `end`."""
    last = parse_moment(end, "end") or utcnow()
    try:
        first = parse_moment(start, "start") or last - DEFAULT_RANGE
    except OverflowError:
        first = datetime.min.replace(tzinfo=UTC)
    if last < first:
        raise HTTPException(400, "end must be after start")
    return first, last


Start = Annotated[str | None, Query(description="RFC 3339; default a day before end.")]
End = Annotated[str | None, Query(description="RFC 3339; default now.")]

usage_router = APIRouter(
    prefix="/system/metrics",
    tags=["metrics"],
    dependencies=[Depends(require_admin)],
    responses=error_responses(400, 401),
)


def _period(request: Request, start: str | None, end: str | None) -> UsagePeriod:
    first, last = time_range(start, end)
    observability = observability_of(request)
    return UsagePeriod.read(observability.history, first, last, request.app.state.admin.username)


@usage_router.get("", summary="Usage totals over a time range")
def metrics_summary(request: Request, start: Start = None, end: End = None) -> dict[str, Any]:
    """Services, CPU and memory hours, `/job` and `/run` requests and their users."""
    period = _period(request, start, end)
    return period.summary(len(request.app.state.registry.list()))


@usage_router.get(
    "/breakdown",
    summary="Usage per service, user or country",
    responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
)
def metrics_breakdown(
    request: Request,
    group_by: Annotated[str, Query(description="service, user or country")],
    start: Start = None,
    end: End = None,
    include_users: bool = False,
    format: Annotated[str, Query(description="json or csv")] = "json",
) -> Response:
    kind = format.strip().lower()
    if kind not in ("json", "csv"):
        raise HTTPException(400, "invalid format: use json or csv")
    if kind == "csv" and include_users and group_by.lower() == "service":
        raise HTTPException(400, "include_users is not supported for csv")
    try:
        breakdown = _period(request, start, end).breakdown(group_by, include_users)
    except UnsupportedMetric as error:
        raise HTTPException(400, f"{error}: use service, user or country") from None
    if kind == "csv":
        return Response(breakdown_csv(breakdown), media_type="text/csv")
    return JSONResponse(_json_times(breakdown))


@usage_router.get("/{service_name}", summary="Usage metrics of one service")
def service_metrics(
    request: Request,
    service_name: str,
    start: Start = None,
    end: End = None,
    metric: Annotated[str | None, Query(description=", ".join(METRIC_KEYS))] = None,
) -> dict[str, Any]:
    """Every metric of the service, or only `metric` (OSCAR's value query)."""
    period = _period(request, start, end)
    if not metric:
        return period.service_metrics(service_name)
    try:
        return period.value(service_name, metric.strip())
    except UnsupportedMetric as error:
        raise HTTPException(400, f"invalid metric key: {error}") from None


def _json_times(document: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value
        for key, value in document.items()
    }


# -- the request observer -----------------------------------------------------------------


def invocation(path: str) -> tuple[str, str] | None:
    """(kind, service) of a `/run/{service}` or `/job/{service}` path."""
    for prefix, kind in _INVOCATIONS.items():
        if path.startswith(prefix):
            return kind, path[len(prefix) :].strip("/")
    return None


def caller(scope: Scope, status: int) -> str:
    """Who made the request: the Basic user, `service-token` for a service's token, the
    dashboard's user; nobody when the credentials were refused."""
    if status == 401:
        return ""
    connection = HTTPConnection(scope)
    header = connection.headers.get("authorization", "")
    basic = parse_basic(header)
    if basic is not None:
        return basic[0]
    if parse_bearer(header) is not None:
        return "service-token"
    session = session_from_api_request(connection)
    return session.username if session is not None else ""


class RequestObserver:
    """Reports each `POST /job/*` and `/run/*` once its answer is sent; other requests pass."""

    def __init__(self, app: ASGIApp, observability: Observability) -> None:
        self.app = app
        self.observability = observability

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = invocation(scope["path"]) if scope["type"] == "http" else None
        if found is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        kind, service = found
        at = utcnow()
        started = time.perf_counter()
        status = 500
        job_id: str | None = None

        async def observing_send(message: Message) -> None:
            nonlocal status, job_id
            if message["type"] == "http.response.start":
                status = message["status"]
                job_id = _job_id(message.get("headers", []))
            await send(message)

        try:
            await self.app(scope, receive, observing_send)
        finally:
            self._report(scope, kind, service, at, time.perf_counter() - started, status, job_id)

    def _report(
        self,
        scope: Scope,
        kind: str,
        service: str,
        at: datetime,
        seconds: float,
        status: int,
        job_id: str | None,
    ) -> None:
        metrics = self.observability.metrics
        if metrics is not None and kind == "sync":
            known = status not in (401, 403, 404)
            metrics.run_answered(service if known else _UNKNOWN_SERVICE, status, seconds)
        client = scope.get("client")
        self.observability.history.record_request(
            RequestRecord(
                at=at,
                kind=kind,
                service=_text(service, 255),
                method=_text(scope["method"], 16),
                path=_text(scope["path"], 1024),
                status=status,
                duration=seconds,
                client_ip=_text(client[0] if client else "", 64),
                user=_text(caller(scope, status), 255),
                job_id=job_id,
            )
        )


def _text(value: str, limit: int) -> str:
    """A value from the request as a column can hold it: cut, and without NUL (which
    PostgreSQL refuses in text, and which would then fail every write of the batch)."""
    return value[:limit].replace("\x00", "\ufffd")


def _job_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The job a `/run` (`X-Oscar-Job-Id`) or `/job` (`Location: .../{id}`) answer names."""
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"x-oscar-job-id":
            return value.decode("latin-1")[:36]
        if lowered == b"location":
            return value.decode("latin-1").rsplit("/", 1)[-1][:36]
    return None


def install(app: FastAPI, observability: Observability) -> None:
    """Serve `observability` on `app` and report its invocations to it."""
    app.state.observability = observability
    app.add_middleware(RequestObserver, observability=observability)
