"""An HTTP client of the OSCAR REST API, as the `oscar` commands need it.

It speaks only the documented OSCAR routes (plus oscar-py's extensions, marked), so it works
against oscar-py and against an OSCAR cluster alike. Every transport or HTTP failure is turned
into one `CliError` whose message names the endpoint and what to check.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from oscarpy.cli.clusters import Cluster
from oscarpy.cli.errors import (
    CliError,
    ConnectionFailed,
    NotFound,
    RequestFailed,
    Unauthorized,
    UsageError,
)
from oscarpy.cli.tokens import access_token

if TYPE_CHECKING:
    import httpx

DEFAULT_TIMEOUT = 30.0
JOBS_PAGE_SIZE = 1000
RUN_TIMEOUT = 600.0
"""A synchronous invocation lasts as long as the script: give it time."""


@dataclass(frozen=True)
class JobInfo:
    """One job as `/system/logs/{service}` lists it."""

    name: str
    status: str
    creation_time: str | None = None
    start_time: str | None = None
    finish_time: str | None = None
    reason: str | None = None
    """oscar-py extension: why a job failed (e.g. "script exited with 3")."""
    node: str | None = None
    """oscar-py extension: the machine (Swarm node) that ran the latest attempt."""

    @property
    def state(self) -> str:
        """The status in lower case: OSCAR says `Succeeded`, others may say `succeeded`."""
        return self.status.lower()

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    def as_dict(self) -> dict[str, str | None]:
        return {
            "name": self.name,
            "status": self.status,
            "creation_time": self.creation_time,
            "start_time": self.start_time,
            "finish_time": self.finish_time,
            "reason": self.reason,
            "node": self.node,
        }


FINISHED_STATES = frozenset({"succeeded", "failed", "cancelled", "canceled"})


class OscarClient:
    """One cluster's REST API, authenticated with the cluster's Basic credentials."""

    def __init__(self, cluster: Cluster, cluster_id: str = "") -> None:
        import httpx

        self.cluster = cluster
        self.cluster_id = cluster_id
        bearer = access_token(cluster) if cluster.uses_oidc else ""
        # No user (a cluster given by --endpoint): only service tokens authenticate.
        basic = (
            None if bearer or not cluster.auth_user else (cluster.auth_user, cluster.auth_password)
        )
        self._http = httpx.Client(
            base_url=cluster.endpoint,
            auth=basic,
            headers={"Authorization": f"Bearer {bearer}"} if bearer else None,
            verify=cluster.ssl_verify,
            timeout=DEFAULT_TIMEOUT,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OscarClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str = "",
        **options: Any,
    ) -> httpx.Response:
        """Send one request; map every failure to a `CliError` mentioning `what`."""
        import httpx

        try:
            response = self._http.request(method, path, **options)
        except httpx.TimeoutException as error:
            raise ConnectionFailed(
                f"{self.cluster.endpoint} did not answer in time ({type(error).__name__})"
            ) from error
        except httpx.TransportError as error:
            raise ConnectionFailed(
                f"cannot reach {self.cluster.endpoint}: {_reason(error)}; "
                "check the endpoint and that the server is running"
            ) from error
        if response.is_success:
            return response
        raise self._error(response, what or f"{method} {path}")

    def _error(self, response: httpx.Response, what: str) -> CliError:
        detail = _detail(response)
        status = response.status_code
        sent = response.request.headers.get("authorization", "")
        if status == 403 and sent == self._http.headers.get("authorization") and detail:
            return Unauthorized(f"{what}: {detail} (403)")
        if status in (401, 403) and sent == self._http.headers.get("authorization"):
            return Unauthorized(
                f"{self.cluster.endpoint} rejected the OIDC token of this cluster "
                f"({status}{': ' + detail if detail else ''})"
            )
        if status in (401, 403) and sent.startswith("Bearer "):
            return Unauthorized(f"{what}: the service token was rejected ({status})")
        if status in (401, 403):
            return Unauthorized(
                f"{self.cluster.endpoint} rejected the credentials of user "
                f"{self.cluster.auth_user!r} ({status}{': ' + detail if detail else ''})"
            )
        if status == 404:
            return NotFound(f"{what}: not found" + (f" ({detail})" if detail else ""))
        if status in (400, 409, 422):
            return RequestFailed(f"{what}: {detail or response.reason_phrase}", status)
        return RequestFailed(
            f"{what}: server answered {status} {response.reason_phrase}"
            + (f": {detail}" if detail else ""),
            status,
        )

    # -- system ---------------------------------------------------------------------------

    def health(self) -> str:
        return self.request("GET", "/health", what="health check").text

    def info(self) -> dict[str, Any]:
        return _json_object(self.request("GET", "/system/info", what="cluster info"))

    def config(self) -> dict[str, Any]:
        return _json_object(self.request("GET", "/system/config", what="cluster config"))

    def status(self) -> dict[str, Any]:
        return _json_object(self.request("GET", "/system/status", what="cluster status"))

    # -- services -------------------------------------------------------------------------

    def list_services(self) -> list[dict[str, Any]]:
        response = self.request("GET", "/system/services", what="list services")
        data = response.json()
        if not isinstance(data, list):
            raise RequestFailed("list services: the server did not answer with a list")
        return [item for item in data if isinstance(item, dict)]

    def get_service(self, name: str) -> dict[str, Any]:
        return _json_object(
            self.request("GET", f"/system/services/{_segment(name)}", what=f"service {name!r}")
        )

    def service_exists(self, name: str) -> bool:
        try:
            self.get_service(name)
        except NotFound:
            return False
        return True

    def create_service(self, definition: dict[str, Any]) -> list[str]:
        """Create a service; the server's warnings (none from OSCAR, which answers no body)."""
        response = self.request(
            "POST",
            "/system/services",
            json=definition,
            what=f"create service {definition.get('name')!r}",
        )
        return _warnings(response)

    def update_service(self, definition: dict[str, Any]) -> list[str]:
        """Update a service; the server's warnings (none from OSCAR, which answers no body)."""
        response = self.request(
            "PUT",
            "/system/services",
            json=definition,
            what=f"update service {definition.get('name')!r}",
        )
        return _warnings(response)

    def delete_service(self, name: str) -> None:
        self.request("DELETE", f"/system/services/{_segment(name)}", what=f"service {name!r}")

    def reconcile(self, name: str) -> dict[str, Any]:
        """oscar-py extension: enqueue a job for every input object that has none."""
        response = self.request(
            "POST",
            f"/system/services/{_segment(name)}/reconcile",
            what=f"reconcile service {name!r}",
        )
        return _json_or_text(response)

    # -- invocations ----------------------------------------------------------------------

    def _service_headers(self, name: str, token: str | None) -> dict[str, str]:
        """Bearer with the service token, as OSCAR expects; admin Basic when it has none."""
        if token is None:
            token = str(self.get_service(name).get("token") or "")
        return {"Authorization": f"Bearer {token}"} if token else {}

    def run(self, name: str, body: bytes, token: str | None = None) -> bytes:
        response = self.request(
            "POST",
            f"/run/{_segment(name)}",
            content=body,
            headers=self._service_headers(name, token),
            timeout=RUN_TIMEOUT,
            what=f"run service {name!r}",
        )
        return response.content

    def job(self, name: str, body: bytes, token: str | None = None) -> httpx.Response:
        return self.request(
            "POST",
            f"/job/{_segment(name)}",
            content=body,
            headers=self._service_headers(name, token),
            what=f"job for service {name!r}",
        )

    # -- jobs and logs --------------------------------------------------------------------

    def list_jobs(self, name: str) -> list[JobInfo]:
        """Every job of the service, following `next_page` when the server pages."""
        return list(self.iter_jobs(name))

    def iter_jobs(self, name: str) -> Iterator[JobInfo]:
        """The service's jobs a page at a time (oscar-py lists the newest first)."""
        page: str | None = None
        while True:
            # `limit` is oscar-py's page size (OSCAR ignores it): fewer round trips.
            params = {"limit": str(JOBS_PAGE_SIZE), **({"page": page} if page else {})}
            response = self.request(
                "GET", f"/system/logs/{_segment(name)}", params=params, what=f"service {name!r}"
            )
            data = response.json()
            if not isinstance(data, dict):
                raise RequestFailed(f"jobs of {name!r}: the server did not answer with an object")
            # OSCAR ≥ 3 wraps the map in {"jobs": {...}, "next_page": ...}; older ones don't.
            entries = data.get("jobs") if isinstance(data.get("jobs"), dict) else data
            if "jobs" in data and not isinstance(data.get("jobs"), dict):
                entries = {}
            for job_name, info in (entries or {}).items():
                info = info if isinstance(info, dict) else {}
                yield (
                    JobInfo(
                        name=str(job_name),
                        status=str(info.get("status") or "Unknown"),
                        creation_time=info.get("creation_time"),
                        start_time=info.get("start_time"),
                        finish_time=info.get("finish_time"),
                        reason=info.get("message") or info.get("reason"),
                        node=info.get("node") if isinstance(info.get("node"), str) else None,
                    )
                )
            page = data.get("next_page") if "jobs" in data else None
            if not page:
                return

    def get_log(self, name: str, job: str, *, timestamps: bool = False) -> str:
        response = self.request(
            "GET",
            f"/system/logs/{_segment(name)}/{_segment(job)}",
            params={"timestamps": "true"} if timestamps else None,
            what=f"job {job!r} of service {name!r}",
        )
        return response.text

    def delete_job(self, name: str, job: str) -> None:
        self.request(
            "DELETE",
            f"/system/logs/{_segment(name)}/{_segment(job)}",
            what=f"job {job!r} of service {name!r}",
        )

    def retry_job(self, name: str, job: str) -> JobInfo:
        """oscar-py extension: run a failed job again."""
        response = self.request(
            "POST",
            f"/system/logs/{_segment(name)}/{_segment(job)}/retry",
            what=f"retry job {job!r} of service {name!r}",
        )
        info = _json_object(response)
        return JobInfo(name=job, status=str(info.get("status") or "Unknown"))

    def delete_jobs(self, name: str, *, include_unfinished: bool) -> None:
        """Without `include_unfinished` only succeeded jobs go (OSCAR's `all=false`)."""
        params = {"all": "true"} if include_unfinished else None
        self.request(
            "DELETE", f"/system/logs/{_segment(name)}", params=params, what=f"service {name!r}"
        )


def _segment(value: str) -> str:
    """A path segment from user input: never lets `/` or `..` reach another route."""
    from urllib.parse import quote

    if not value or value in (".", ".."):
        raise UsageError(f"invalid name {value!r}")
    return quote(value, safe="")


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise RequestFailed(
            f"{response.request.url.path}: the server did not answer with JSON"
        ) from None
    if not isinstance(data, dict):
        raise RequestFailed(f"{response.request.url.path}: the server did not answer an object")
    return data


def _warnings(response: httpx.Response) -> list[str]:
    """oscar-py's `warnings` in a create or update answer; an empty or other body has none."""
    try:
        data = response.json()
    except ValueError:
        return []
    found = data.get("warnings") if isinstance(data, dict) else None
    return [str(line) for line in found] if isinstance(found, list) else []


def _json_or_text(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {"message": response.text}
    return data if isinstance(data, dict) else {"result": data}


def _detail(response: httpx.Response) -> str:
    """The server's own explanation: FastAPI's `detail`, else the body's first line."""
    try:
        data = response.json()
    except ValueError:
        text = response.text.strip()
        return text.splitlines()[0][:300] if text else ""
    if isinstance(data, dict) and "detail" in data:
        detail = data["detail"]
        if isinstance(detail, list):  # FastAPI validation errors
            return "; ".join(_validation_message(item) for item in detail)
        return str(detail)
    return json.dumps(data)[:300]


def _validation_message(item: object) -> str:
    if not isinstance(item, dict):
        return str(item)
    location = ".".join(str(part) for part in item.get("loc", []) if part != "body")
    return f"{location}: {item.get('msg')}" if location else str(item.get("msg"))


def _reason(error: Exception) -> str:
    text = str(error).strip()
    if "Connection refused" in text or "[Errno 111]" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "unknown host"
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "TLS certificate not trusted (use --disable-ssl for self-signed certificates)"
    return text.splitlines()[0] if text else type(error).__name__
