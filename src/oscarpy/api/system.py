"""`/system/info`, `/system/config` and `/system/status`: what OSCAR clients ask first."""

from __future__ import annotations

import os
import platform
import socket
from dataclasses import replace
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from oscarpy import __version__
from oscarpy.api.auth import current_principal, require_admin
from oscarpy.api.errors import error_responses
from oscarpy.api.metrics import observability_of, parse_moment
from oscarpy.api.schemas import (
    ClusterConfig,
    ClusterMetrics,
    ClusterStatus,
    CpuMetrics,
    GpuMetrics,
    MemoryMetrics,
    MinioProviderInfo,
    NodeCondition,
    NodeDetail,
    NodeResource,
    OidcInfo,
    OscarStatus,
    PodStates,
    ServerlessBackend,
    StorageStatus,
    SystemConfig,
    SystemInfo,
    SystemStatus,
)
from oscarpy.auth.credentials import AdminCredentials
from oscarpy.auth.principal import Principal
from oscarpy.auth.users import Users
from oscarpy.config import Settings
from oscarpy.engine import ClusterRuntime, Engine, NodeStatus
from oscarpy.gpu import host_has_gpu
from oscarpy.observability.history import LoggedRequest

router = APIRouter(
    prefix="/system",
    tags=["system"],
    dependencies=[Depends(current_principal)],
    responses=error_responses(401),
)

Caller = Annotated[Principal, Depends(current_principal)]


def _job_counts(engine: Engine | None) -> dict[str, int]:
    """Jobs by state (`pending`, `running`, ...); none when the process runs no engine."""
    if engine is None:
        return {}
    return {str(state): number for state, number in engine.counts().items()}


@router.get("/info", response_model=SystemInfo, summary="Version of the server")
def info() -> SystemInfo:
    return SystemInfo(
        version=__version__,
        git_commit="",
        architecture=f"{platform.system().lower()}/{_architecture()}",
        kubernetes_version="",
        serverless_backend=ServerlessBackend(name="oscar-py", version=__version__),
    )


@router.get("/config", response_model=SystemConfig, summary="Storage endpoint and credentials")
def config(request: Request, caller: Caller) -> SystemConfig:
    """The cluster's settings and the S3 endpoint of `minio.default` with the caller's own key
    pair: the admin's for the admin, a user's own for a user (never another's)."""
    settings: Settings = request.app.state.settings
    return SystemConfig(
        config=ClusterConfig(
            name="oscar-py",
            namespace="oscar",
            services_namespace="oscar-svc",
            gpu_available=host_has_gpu(),
            interLink_available=False,
            yunikorn_enable=False,
            kueue_enable=False,
            volume_enable=False,
            minio_quota_enabled=False,
            oidc_groups=settings.oidc_group_list,
        ),
        minio_provider=_storage_for(request, caller, rotate=False),
        allowed_image_repositories=request.app.state.registry.allowed_images.get(),
    )


@router.post(
    "/config/keys",
    response_model=MinioProviderInfo,
    summary="Replace the caller's S3 key pair",
    responses=error_responses(409),
)
def rotate_keys(request: Request, caller: Caller) -> MinioProviderInfo:
    """A new S3 access key and secret for the calling user; the old pair stops working at once.
    The admin's pair is the admin password, changed with OSCAR_PASSWORD instead (409)."""
    return _storage_for(request, caller, rotate=True)


def _storage_for(request: Request, caller: Principal, *, rotate: bool) -> MinioProviderInfo:
    settings: Settings = request.app.state.settings
    endpoint = getattr(request.app.state, "s3_endpoint", None) or settings.s3_endpoint()
    users: Users = request.app.state.users
    user = users.get(caller.user_id)
    if user is None:
        if rotate:
            raise HTTPException(
                409, detail="the admin's S3 key pair is the admin password (OSCAR_PASSWORD)"
            )
        admin: AdminCredentials = request.app.state.admin
        access_key, secret_key = admin.username, admin.password
    else:
        if rotate:
            user = users.rotate_keys(user.user_id)
        access_key, secret_key = user.access_key, user.secret_key
    return MinioProviderInfo(
        endpoint=endpoint,
        verify=True,
        access_key=access_key,
        secret_key=secret_key,
        region=settings.region,
    )


@router.get("/status", response_model=SystemStatus, summary="Resources, jobs and storage")
def status(request: Request) -> SystemStatus:
    """Every node that runs jobs (this host in local mode, each Swarm node in cluster mode),
    the jobs by state, and the embedded store's size."""
    settings: Settings = request.app.state.settings
    engine: Engine | None = getattr(request.app.state, "engine", None)
    counts = _job_counts(engine)
    buckets, objects = request.app.state.store.counts()
    if engine is not None and isinstance(engine.runtime, ClusterRuntime):
        nodes = [
            _node_detail(node, node.cpu_reserved, node.memory_reserved) for node in engine.nodes()
        ]
    else:
        nodes = [_this_host(engine, counts.get("running", 0))]
    ready = [node for node in nodes if node.status == "Ready" and node.availability == "active"]
    free_cpu = [_free(node.cpu.capacity_cores, node.cpu.usage_cores) for node in ready]
    free_memory = [_free(node.memory.capacity_bytes, node.memory.usage_bytes) for node in ready]
    cpu_total = [node.cpu.capacity_cores or 0 for node in ready]
    memory_total = [node.memory.capacity_bytes or 0 for node in ready]
    return SystemStatus(
        cluster=ClusterStatus(
            nodes_count=len(nodes),
            metrics=ClusterMetrics(
                cpu=CpuMetrics(
                    total_free_cores=sum(free_cpu),
                    max_free_on_node_cores=max(free_cpu, default=0),
                    total_schedulable_cores=sum(cpu_total),
                    total_schedulable_on_node_cores=max(cpu_total, default=0),
                ),
                memory=MemoryMetrics(
                    total_free_bytes=sum(free_memory),
                    max_free_on_node_bytes=max(free_memory, default=0),
                    total_schedulable_bytes=sum(memory_total),
                    max_schedulable_on_node_bytes=max(memory_total, default=0),
                ),
                gpu=GpuMetrics(total_gpu=0),
            ),
            nodes=nodes,
        ),
        oscar=OscarStatus(
            deployment_name="oscar-py",
            ready=True,
            jobs_count=sum(counts.values()),
            # Named as Kubernetes pod phases, which OSCAR counts.
            pods=PodStates(
                total=sum(counts.values()),
                states={state.capitalize(): number for state, number in counts.items()},
            ),
            oidc=OidcInfo(
                enabled=bool(settings.oidc_issuer_list),
                issuers=settings.oidc_issuer_list,
                groups=settings.oidc_group_list,
            ),
        ),
        minio=StorageStatus(buckets_count=buckets, total_objects=objects),
    )


def _free(capacity: int | None, usage: int | None) -> int:
    return max(0, (capacity or 0) - (usage or 0))


def _this_host(engine: Engine | None, running: int) -> NodeDetail:
    """Local mode: this host, its load and memory in use, and what running jobs reserve."""
    cpu_capacity = _cpu_capacity_millicores()
    memory_total, memory_available = _memory_bytes()
    host = NodeStatus(socket.gethostname(), cpu_capacity / 1000, memory_total, jobs_running=running)
    if engine is not None:
        host = replace(engine.nodes()[0], cpu_cores=host.cpu_cores, memory_bytes=memory_total)
    load = min(cpu_capacity, int(os.getloadavg()[0] * 1000)) / 1000
    return _node_detail(host, load, memory_total - memory_available)


def _node_detail(node: NodeStatus, cpu_usage: float, memory_usage: int) -> NodeDetail:
    """A node in OSCAR's shape (usage: the load on this host, the reservations on a Swarm
    node), with reserved and free figures beside."""
    ready = node.ready
    return NodeDetail(
        name=node.name,
        cpu=NodeResource(
            capacity_cores=int(node.cpu_cores * 1000),
            usage_cores=int(cpu_usage * 1000),
            reserved_cores=int(node.cpu_reserved * 1000),
            free_cores=int(node.cpu_free * 1000),
        ),
        memory=NodeResource(
            capacity_bytes=node.memory_bytes,
            usage_bytes=memory_usage,
            reserved_bytes=node.memory_reserved,
            free_bytes=node.memory_free,
        ),
        gpu=0,
        is_interlink=False,
        status="Ready" if ready else node.state.capitalize(),
        conditions=[NodeCondition(type="Ready", status=ready)],
        running_jobs=node.jobs_running,
        availability=node.availability,
        labels=dict(node.labels),
    )


def _architecture() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _cpu_capacity_millicores() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return cores * 1000


def _memory_bytes() -> tuple[int, int]:
    """Total and available memory of the host, from /proc/meminfo (zeros where there is none)."""
    fields: dict[str, int] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                fields[name] = int(parts[0]) * 1024
    except OSError:
        return 0, 0
    total = fields.get("MemTotal", 0)
    return total, fields.get("MemAvailable", fields.get("MemFree", 0))


# -- the request log ----------------------------------------------------------------------

REQUEST_LOG_PAGE = 100
REQUEST_LOG_MAX_PAGE = 1000
EXECUTIONS_PREFIX = "[GIN-EXECUTIONS-LOGGER]"


class RequestLogEntry(BaseModel):
    """One `/job` or `/run` request, as OSCAR's `/system/logs` lists them (plus our fields)."""

    timestamp: str
    status: int
    latency: str = Field(description="As Go prints a duration: 850µs, 12.5ms, 2.1s.")
    client_ip: str
    method: str
    path: str
    user: str = Field(description="The Basic user, service-token, or empty if refused.")
    raw: str
    service: str
    kind: str = Field(description="sync (/run) or async (/job).")
    job_id: str | None


class RequestLogPage(BaseModel):
    logs: list[RequestLogEntry]
    next_page: str = Field(description="Pass as ?page= for the next entries; empty on the last.")


@router.get(
    "/logs",
    response_model=RequestLogPage,
    summary="Request log of /job and /run",
    dependencies=[Depends(require_admin)],
    responses=error_responses(403),
)
def request_log(
    request: Request,
    page: Annotated[str, Query(description="The next_page of the previous answer.")] = "",
    limit: Annotated[int, Query(ge=1, le=REQUEST_LOG_MAX_PAGE)] = REQUEST_LOG_PAGE,
    service: str | None = None,
    start: Annotated[str | None, Query(description="RFC 3339; oldest entry to list.")] = None,
    end: Annotated[str | None, Query(description="RFC 3339; list entries before it.")] = None,
) -> RequestLogPage:
    """Who invoked which service when, and the answer's status, oldest first; kept for
    `OSCAR_REQUEST_LOG_RETENTION_DAYS`."""
    if page and not (page.isascii() and page.isdigit() and len(page) <= 18):
        raise HTTPException(400, f"invalid page {page!r}: pass the next_page of an answer")
    history = observability_of(request).history
    if service is not None and "\x00" in service:
        return RequestLogPage(logs=[], next_page="")  # no name holds one (see api.metrics)
    found = history.requests(
        after=int(page or 0),
        limit=limit + 1,
        service=service,
        start=parse_moment(start, "start"),
        end=parse_moment(end, "end"),
    )
    more = len(found) > limit
    shown = found[:limit]
    return RequestLogPage(
        logs=[_log_entry(entry) for entry in shown],
        next_page=str(shown[-1].id) if more and shown else "",
    )


def _log_entry(entry: LoggedRequest) -> RequestLogEntry:
    timestamp = entry.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    latency = go_duration(entry.duration)
    request_line = f"{entry.method} {entry.path}"
    raw = (
        f"{EXECUTIONS_PREFIX} {timestamp} | {entry.status} | {latency} | {entry.client_ip} | "
        f"{request_line} | {entry.user}"
    )
    return RequestLogEntry(
        timestamp=timestamp,
        status=entry.status,
        latency=latency,
        client_ip=entry.client_ip,
        method=entry.method,
        path=entry.path,
        user=entry.user,
        raw=raw,
        service=entry.service,
        kind=entry.kind,
        job_id=entry.job_id,
    )


def go_duration(seconds: float) -> str:
    """A duration as Go's `time.Duration.String` prints it, which OSCAR's log shows."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale or unit == "µs":
            return f"{seconds / scale:.6f}".rstrip("0").rstrip(".") + unit
    return "0s"
