"""Response bodies of the system routes, shaped exactly as OSCAR's so that its clients parse them.

Field names follow OSCAR's Go structs (`pkg/types/info.go`, `status.go`, `config.go`); CPU in the
status is in millicores and memory in bytes, as there.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    """Every error answer (OSCAR answers some with plain text; we always answer JSON)."""

    detail: str = Field(description="What went wrong and, where it helps, what to change.")


class ServerlessBackend(BaseModel):
    name: str
    version: str


class SystemInfo(BaseModel):
    version: str
    git_commit: str
    architecture: str
    kubernetes_version: str = Field(description="Empty: oscar-py does not run on Kubernetes.")
    serverless_backend: ServerlessBackend


class MinioProviderInfo(BaseModel):
    """The S3 endpoint and credentials clients use for `minio.default` (the embedded store)."""

    endpoint: str
    verify: bool
    access_key: str
    secret_key: str
    region: str


class ClusterConfig(BaseModel):
    """OSCAR v4's `config`: what the cluster offers; the same for every caller."""

    name: str
    namespace: str
    services_namespace: str
    gpu_available: bool
    interLink_available: bool  # noqa: N815 - OSCAR's spelling
    yunikorn_enable: bool
    kueue_enable: bool
    volume_enable: bool
    minio_quota_enabled: bool
    oidc_groups: list[str] = Field(description="Groups a user must be in to sign in.")


class SystemConfig(BaseModel):
    """OSCAR v4's answer: the cluster's `config`, and the caller's own S3 credentials."""

    config: ClusterConfig
    minio_provider: MinioProviderInfo
    allowed_image_repositories: list[str] = Field(
        description="Empty: every image may be used (OSCAR's allow-list is not implemented)."
    )


class CpuMetrics(BaseModel):
    total_free_cores: int
    max_free_on_node_cores: int
    total_schedulable_cores: int
    total_schedulable_on_node_cores: int


class MemoryMetrics(BaseModel):
    total_free_bytes: int
    max_free_on_node_bytes: int
    total_schedulable_bytes: int
    max_schedulable_on_node_bytes: int


class GpuMetrics(BaseModel):
    total_gpu: int


class ClusterMetrics(BaseModel):
    cpu: CpuMetrics
    memory: MemoryMetrics
    gpu: GpuMetrics


class NodeResource(BaseModel):
    capacity_cores: int | None = None
    usage_cores: int | None = None
    capacity_bytes: int | None = None
    usage_bytes: int | None = None
    reserved_cores: int | None = Field(
        None, description="oscar-py extension: millicores reserved by the jobs running there."
    )
    free_cores: int | None = Field(None, description="oscar-py extension: capacity − reserved.")
    reserved_bytes: int | None = Field(
        None, description="oscar-py extension: memory reserved by the jobs running there."
    )
    free_bytes: int | None = Field(None, description="oscar-py extension: capacity − reserved.")


class NodeCondition(BaseModel):
    type: str
    status: bool


class NodeDetail(BaseModel):
    name: str
    cpu: NodeResource
    memory: NodeResource
    gpu: int
    is_interlink: bool
    status: str
    conditions: list[NodeCondition]
    running_jobs: int = Field(description="oscar-py extension: jobs running on this node.")
    availability: str = Field(
        "active", description="oscar-py extension: active, drain (being emptied) or pause."
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="oscar-py extension: the node's labels (placement)."
    )


class ClusterStatus(BaseModel):
    nodes_count: int
    metrics: ClusterMetrics
    nodes: list[NodeDetail]


class PodStates(BaseModel):
    total: int
    states: dict[str, int]


class OidcInfo(BaseModel):
    enabled: bool
    issuers: list[str]
    groups: list[str]


class OscarStatus(BaseModel):
    deployment_name: str
    ready: bool
    jobs_count: int
    pods: PodStates = Field(description="Jobs by state (OSCAR counts pods).")
    oidc: OidcInfo


class StorageStatus(BaseModel):
    buckets_count: int
    total_objects: int


class SystemStatus(BaseModel):
    cluster: ClusterStatus
    oscar: OscarStatus
    minio: StorageStatus = Field(description="The embedded object store.")
