"""Settings of a running platform, read from `OSCAR_*` environment variables and CLI flags.

Every setting has one place: this class. The CLI passes the flags a user gave as overrides,
so a flag beats its environment variable, which beats the default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

RuntimeName = Literal["docker", "process", "swarm"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("oscar-py", appauthor=False))


class Settings(BaseSettings):
    """The platform's configuration; each field is also the environment variable `OSCAR_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="OSCAR_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address the REST API and S3 front-end listen on.")
    port: int = Field(
        8080, ge=0, le=65535, description="Port of the REST API (0 picks a free one)."
    )
    s3_port: int = Field(9000, ge=0, le=65535, description="Port of the S3 front-end.")
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Holds the state DB, blobs, job work directories and logs.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the state DB; default SQLite in the data directory. "
        "PostgreSQL: postgresql://user:password@host/db.",
    )
    username: str = Field("oscar", min_length=1, description="Admin user (OSCAR_USERNAME).")
    password: SecretStr | None = Field(
        None,
        description="Admin password (OSCAR_PASSWORD); generated and stored on first start.",
    )
    runtime: RuntimeName = Field("docker", description="How scripts run: docker, process or swarm.")
    log_level: LogLevel = Field("INFO", description="Least severe log level printed.")
    region: str = Field("us-east-1", description="Region the S3 front-end reports.")
    public_s3_endpoint: str | None = Field(
        None,
        description="S3 endpoint URL handed to clients by /system/config; default derived "
        "from host and s3_port.",
    )

    job_cpu: float | None = Field(
        None, gt=0, description="CPU cores all running jobs may use together; default all cores."
    )
    job_memory: str | None = Field(
        None,
        description="Memory all running jobs may use together (256Mi, 8G); default the host's.",
    )
    job_log_limit: int = Field(
        10 * 1024 * 1024, ge=1024, description="Bytes of log kept per job; the rest is cut."
    )
    job_log_flood_limit: int = Field(
        100 * 1024 * 1024,
        ge=1024,
        description="Bytes a job may print; past them it is killed and fails (reason log_flood).",
    )
    job_disk_limit: int = Field(
        10 * 1024**3,
        ge=1024 * 1024,
        description="Bytes a job may write (work directory and container filesystem, each file "
        "at most this size); past them it is killed and fails (reason disk).",
    )
    job_retry_limit: int = Field(
        3, ge=0, description="Retries of a job after infrastructure failures (image, daemon, OOM)."
    )
    job_retry_backoff: float = Field(
        2.0, ge=0, description="Seconds before the first infrastructure retry; doubles each time."
    )
    job_ttl: int = Field(
        30 * 24 * 3600,
        ge=0,
        description="Seconds a finished job and its log are kept (OSCAR's TTL_JOB); 0 keeps "
        "them forever. A service's job_ttl overrides it.",
    )
    job_expiry_interval: float = Field(
        600.0, gt=0, description="Seconds between two sweeps that delete expired jobs."
    )
    storage_watch_interval: float = Field(
        0.0,
        ge=0,
        description="Seconds between two listings of the services' inputs on external storage "
        "(minio.<id>, s3.<id>, webdav.<id>) that start jobs for new files; 0 (default) does not "
        "poll: such inputs start jobs through notifications to /job/{service} and reconcile.",
    )
    gpu: Literal["required", "optional"] = Field(
        "required",
        description="`optional`: accept services with enable_gpu on a host without a GPU "
        "(with a warning; they run on the CPU) instead of refusing them.",
    )
    exposed_scale_interval: float = Field(
        15.0,
        gt=0,
        description="Seconds between two CPU checks that scale an exposed service by one replica.",
    )
    exposed_startup_seconds: float = Field(
        120.0,
        gt=0,
        description="Seconds an exposed service's new replica has to answer its health check.",
    )
    job_lease_seconds: float = Field(
        30.0, gt=0, description="A running job whose server stops renewing it is taken over after."
    )
    job_shutdown_grace: float = Field(
        5.0,
        ge=0,
        description="Seconds a stopping server waits for running jobs (then adopts "
        "them on the next start).",
    )

    run_idle_seconds: float = Field(
        300.0,
        ge=0,
        description="Warm /run containers beyond a service's synchronous.min_scale are removed "
        "after this many idle seconds.",
    )
    run_body_limit: int = Field(
        100 * 1024 * 1024,
        ge=0,
        description="Largest /run request body in bytes (streamed to disk); larger ones get 413.",
    )

    job_body_limit: int = Field(
        100 * 1024 * 1024,
        ge=0,
        description="Largest POST /job request body in bytes (streamed to disk); larger ones "
        "get 413.",
    )

    header_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds a client has to send a request's line and headers (both ports); "
        "a slower connection is closed.",
    )
    body_timeout: float = Field(
        60.0,
        gt=0,
        description="Seconds a request body may stall (no byte while the server reads) before "
        "its connection is closed (both ports).",
    )
    waiting_connections_per_address: int = Field(
        64,
        ge=1,
        description="Connections from one client address that may wait for their headers at "
        "once, per port; more are closed.",
    )
    waiting_connections: int = Field(
        1024,
        ge=1,
        description="Connections that may wait for their headers at once, per port.",
    )
    signin_free_failures: int = Field(
        5,
        ge=1,
        description="Failed sign-ins (Basic, dashboard, S3) per client address or user before "
        "the next attempt must wait.",
    )
    signin_delay: float = Field(
        1.0, gt=0, description="Seconds the first throttled attempt waits; doubles per failure."
    )
    signin_max_delay: float = Field(
        300.0, gt=0, description="Longest wait between sign-in attempts after failures."
    )
    api_docs: bool = Field(
        False,
        description="Serve the interactive API pages /docs and /redoc (to the admin); they "
        "load Swagger UI and ReDoc from a CDN. /openapi.json is always served to the admin.",
    )
    secure_cookie: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Mark the dashboard's cookies Secure: auto when the request came over HTTPS "
        "(or a proxy says so in X-Forwarded-Proto), always, or never.",
    )
    trusted_origins: str = Field(
        "",
        description="Comma-separated origins (https://oscar.example.org) besides the server's "
        "own address that may send state-changing requests from a browser; others get 403.",
    )
    cors_origins: str = Field(
        "",
        description="Comma-separated browser origins (https://dashboard.example.org) whose pages "
        "may call the REST API and the S3 API (CORS), e.g. OSCAR's dashboard served elsewhere; "
        "'*' for any origin (reads only: state-changing calls still need a listed origin).",
    )
    metrics: bool = Field(
        True,
        description="Count requests and jobs for GET /metrics (Prometheus); off, /metrics "
        "answers 404 and no request is counted.",
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token Prometheus may scrape /metrics with (OSCAR_METRICS_TOKEN); "
        "the admin's credentials always work.",
    )
    oidc_issuers: str = Field(
        "",
        description="Comma-separated OpenID Connect issuer URLs (https://aai.egi.eu/auth/realms/"
        "egi) whose bearer tokens sign users in (OSCAR's OIDC_VALID_ISSUERS); empty, only the "
        "admin and service tokens are accepted.",
    )
    oidc_groups: str = Field(
        "",
        description="Comma-separated groups a user must be in (any one) to sign in (OSCAR's "
        "OIDC_GROUPS), matched against the groups claim; an EGI entitlement URN "
        "(urn:mace:egi.eu:group:<vo>:...) also counts as its group <vo>. Empty, any user of "
        "a trusted issuer may sign in.",
    )
    oidc_groups_claim: str = Field(
        "eduperson_entitlement",
        description="Claim of the token (or of the issuer's userinfo) holding the user's groups.",
    )
    oidc_audience: str = Field(
        "",
        description="When set, a JWT access token must name this audience in `aud`.",
    )
    oidc_client_id: str = Field(
        "",
        description="Client id the dashboard signs users in with, through the authorization "
        "code flow with PKCE at each of OSCAR_OIDC_ISSUERS; empty, the dashboard offers only "
        "the admin's password. Register <public URL>/ui/login/callback as its redirect URI.",
    )
    oidc_client_secret: SecretStr | None = Field(
        None,
        description="Secret of the dashboard's client, for an issuer that registers it as a "
        "confidential client; none, a public client (PKCE alone).",
    )
    oidc_admin_users: str = Field(
        "",
        description="Comma-separated user ids (the `sub` of their tokens) who are admins: they "
        "see and may change everything (OSCAR's USERS_ADMIN).",
    )
    request_log_retention_days: float = Field(
        30.0,
        gt=0,
        description="Days the request log (/system/logs) and the usage records behind "
        "/system/metrics are kept.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @field_validator("job_log_flood_limit", mode="after")
    @classmethod
    def _flood_beyond_kept_log(cls, value: int, info: ValidationInfo) -> int:
        kept = info.data.get("job_log_limit")
        if kept is not None and value < kept:
            raise ValueError(
                f"{value} is below job_log_limit ({kept}): a job is killed only for printing "
                "more than the log it keeps"
            )
        return value

    @property
    def trusted_origin_list(self) -> list[str]:
        return _comma_list(self.trusted_origins)

    @property
    def oidc_issuer_list(self) -> list[str]:
        return _comma_list(self.oidc_issuers)

    @property
    def oidc_group_list(self) -> list[str]:
        return _comma_list(self.oidc_groups)

    @property
    def oidc_admin_list(self) -> list[str]:
        return _comma_list(self.oidc_admin_users)

    @property
    def cors_origin_list(self) -> list[str]:
        return [
            origin.strip().rstrip("/") for origin in self.cors_origins.split(",") if origin.strip()
        ]

    @property
    def state_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'oscar.db'}"

    def s3_endpoint(self, bound_port: int | None = None) -> str:
        """The S3 URL clients should use; `bound_port` replaces a port of 0 once bound."""
        if self.public_s3_endpoint:
            return self.public_s3_endpoint.rstrip("/")
        return f"http://{_url_host(self.host)}:{bound_port or self.s3_port}"

    def api_endpoint(self, bound_port: int | None = None) -> str:
        return f"http://{_url_host(self.host)}:{bound_port or self.port}"


def _url_host(host: str) -> str:
    """A listen address as a client would reach it (the wildcard means this host)."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]
