"""`/system/info`, `/system/config` and `/system/status`: what OSCAR clients ask first."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path

from fastapi import APIRouter, Depends, Request

from oscarpy import __version__
from oscarpy.api.auth import require_admin
from oscarpy.api.errors import error_responses
from oscarpy.api.schemas import (
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
from oscarpy.config import Settings
from oscarpy.engine import Engine

router = APIRouter(
    prefix="/system",
    tags=["system"],
    dependencies=[Depends(require_admin)],
    responses=error_responses(401),
)


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
def config(request: Request) -> SystemConfig:
    """The S3 endpoint and credentials of `minio.default`, which clients use to move files."""
    settings: Settings = request.app.state.settings
    admin: AdminCredentials = request.app.state.admin
    endpoint = getattr(request.app.state, "s3_endpoint", None) or settings.s3_endpoint()
    return SystemConfig(
        name="oscar-py",
        namespace="oscar",
        services_namespace="oscar-svc",
        gpu_available=False,
        interLink_available=False,
        yunikorn_enable=False,
        oidc_groups=[],
        minio_provider=MinioProviderInfo(
            endpoint=endpoint,
            verify=True,
            access_key=admin.username,
            secret_key=admin.password,
            region=settings.region,
        ),
    )


@router.get("/status", response_model=SystemStatus, summary="Resources, jobs and storage")
def status(request: Request) -> SystemStatus:
    """This host as OSCAR's single node, the jobs by state, and the embedded store's size."""
    counts = _job_counts(getattr(request.app.state, "engine", None))
    buckets, objects = request.app.state.store.counts()
    cpu_capacity = _cpu_capacity_millicores()
    cpu_usage = min(cpu_capacity, int(os.getloadavg()[0] * 1000))
    memory_total, memory_available = _memory_bytes()
    memory_usage = memory_total - memory_available
    node = NodeDetail(
        name=socket.gethostname(),
        cpu=NodeResource(capacity_cores=cpu_capacity, usage_cores=cpu_usage),
        memory=NodeResource(capacity_bytes=memory_total, usage_bytes=memory_usage),
        gpu=0,
        is_interlink=False,
        status="Ready",
        conditions=[NodeCondition(type="Ready", status=True)],
        running_jobs=counts.get("running", 0),
    )
    return SystemStatus(
        cluster=ClusterStatus(
            nodes_count=1,
            metrics=ClusterMetrics(
                cpu=CpuMetrics(
                    total_free_cores=cpu_capacity - cpu_usage,
                    max_free_on_node_cores=cpu_capacity - cpu_usage,
                    total_schedulable_cores=cpu_capacity,
                    total_schedulable_on_node_cores=cpu_capacity,
                ),
                memory=MemoryMetrics(
                    total_free_bytes=memory_available,
                    max_free_on_node_bytes=memory_available,
                    total_schedulable_bytes=memory_total,
                    max_schedulable_on_node_bytes=memory_total,
                ),
                gpu=GpuMetrics(total_gpu=0),
            ),
            nodes=[node],
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
            oidc=OidcInfo(enabled=False, issuers=[], groups=[]),
        ),
        minio=StorageStatus(buckets_count=buckets, total_objects=objects),
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
