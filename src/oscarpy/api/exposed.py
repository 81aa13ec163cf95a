"""Exposed services at the REST edge: OSCAR's lifecycle routes, and the proxy at
`/system/services/{service}/exposed/...` (HTTP and WebSocket).

The proxy dials only the loopback port of one of the service's own replicas (given by the
engine); the request's path is sent as the path of that URL and never chooses the host or port.
Without `set_auth` the route is open, as in OSCAR; with it, HTTP Basic with the service's name
and token, which is not passed on to the replica.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict
from typing import Annotated, Any

import httpx
import websockets
import websockets.asyncio.client
from fastapi import APIRouter, Depends, HTTPException, Query, Request, WebSocket, status
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.websockets import WebSocketDisconnect

from oscarpy.api.auth import (
    current_principal,
    find_service,
    parse_basic,
    secrets_equal,
    service_for,
)
from oscarpy.api.errors import error_responses
from oscarpy.auth.principal import Principal
from oscarpy.engine.exposed import ExposedServices
from oscarpy.services.errors import ServiceNotFound
from oscarpy.services.model import Service

lifecycle = APIRouter(
    prefix="/system/services",
    tags=["exposed services"],
    responses=error_responses(400, 401, 403, 404),
)
Caller = Annotated[Principal, Depends(current_principal)]
proxy = APIRouter(tags=["exposed services"])

#: Hop-by-hop headers (RFC 9110 §7.6.1), and the ones the proxy sets itself.
_NOT_FORWARDED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_AUTH_CHALLENGE = {"WWW-Authenticate": 'Basic realm="Authentication Required"'}


def _exposed(request: Request | WebSocket) -> ExposedServices:
    manager: ExposedServices = request.app.state.exposed
    return manager


def _service(request: Request | WebSocket, name: str) -> Service:
    service = find_service(request, name)
    if service is None:
        raise ServiceNotFound(name)
    return service


# -- lifecycle (OSCAR's routes and answers) ---------------------------------------------------


# As in OSCAR, whoever may read the service sees its instances' status; its owner and admins
# read their logs and stop, start or restart them.


@lifecycle.get("/{name}/deployment", summary="Status of an exposed service's instances")
def deployment(request: Request, name: str, caller: Caller) -> dict[str, Any]:
    return asdict(_exposed(request).status(service_for(request, caller, name, "read")))


@lifecycle.get("/{name}/deployment/logs", summary="Recent output of its instances")
def deployment_logs(
    request: Request,
    name: str,
    caller: Caller,
    tail_lines: Annotated[int, Query(alias="tailLines", ge=1, le=10000)] = 200,
    timestamps: bool = False,
) -> dict[str, Any]:
    service = service_for(request, caller, name, "change")
    entries = _exposed(request).logs(service, tail_lines, timestamps)
    answer: dict[str, Any] = {
        "service_name": name,
        "available": bool(entries),
        "entries": [
            {"timestamp": stamp, "message": message} if stamp else {"message": message}
            for stamp, message in entries
        ],
    }
    if not entries:
        answer["message"] = "Deployment logs are not yet available."
    return answer


@lifecycle.post("/{name}/stop", summary="Stop every instance, keeping the service")
def stop(request: Request, name: str, caller: Caller) -> dict[str, Any]:
    service = service_for(request, caller, name, "change")
    _exposed(request).stop_service(service)
    return asdict(_exposed(request).status(service))


@lifecycle.post("/{name}/start", summary="Start the instances again")
def start(request: Request, name: str, caller: Caller) -> dict[str, Any]:
    service = service_for(request, caller, name, "change")
    _exposed(request).start_service(service)
    return asdict(_exposed(request).status(service))


@lifecycle.post("/{name}/restart", summary="Replace every instance by a fresh one")
def restart(request: Request, name: str, caller: Caller) -> dict[str, Any]:
    service = service_for(request, caller, name, "change")
    _exposed(request).restart_service(service)
    return asdict(_exposed(request).status(service))


# -- the proxy --------------------------------------------------------------------------------


def _authorised(service: Service, header: str) -> bool:
    """`set_auth`: the service's name and token as Basic credentials (as OSCAR's ingress)."""
    parsed = parse_basic(header)
    if parsed is None:
        return False
    user_ok = secrets_equal(parsed[0], service.name)
    token_ok = secrets_equal(parsed[1], service.token)
    return user_ok and token_ok


def _target(request: Request | WebSocket, service: Service) -> tuple[str, int, str]:
    """(host, port, path with query) of a ready replica, or 503 when none answers yet."""
    expose = service.expose_settings()
    if expose is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"service {service.name!r} is not exposed")
    if expose.set_auth and not _authorised(service, request.headers.get("authorization", "")):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "give the service's name and token as Basic credentials",
            headers=_AUTH_CHALLENGE,
        )
    address = _exposed(request).endpoint(service.name)
    if address is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"no instance of {service.name} is ready; see /system/services/{service.name}/"
            "deployment",
        )
    prefix = f"/system/services/{service.name}/exposed".encode()
    raw: bytes = request.scope.get("raw_path") or request.scope["path"].encode()
    rest = raw[len(prefix) :] if raw.startswith(prefix) else b""
    path = (raw if expose.rewrite_target else rest) or b"/"
    if not path.startswith(b"/"):
        path = b"/" + path
    query: bytes = request.scope.get("query_string", b"")
    if query:
        path += b"?" + query
    return address[0], address[1], path.decode("latin-1")


def _forwarded_headers(request: Request | WebSocket, service: Service) -> list[tuple[str, str]]:
    expose = service.expose_settings()
    headers = [
        (key, value)
        for key, value in request.headers.items()
        if key not in _NOT_FORWARDED
        and not (expose and expose.set_auth and key == "authorization")
        and not key.startswith("sec-websocket-")
    ]
    client = request.client.host if request.client else ""
    headers += [
        ("x-forwarded-for", client),
        ("x-forwarded-host", request.headers.get("host", "")),
        ("x-forwarded-proto", request.url.scheme.replace("ws", "http")),
        ("x-forwarded-prefix", f"/system/services/{service.name}/exposed"),
    ]
    return headers


def _client(request: Request) -> httpx.AsyncClient:
    client: httpx.AsyncClient | None = getattr(request.app.state, "exposed_client", None)
    if client is None:
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(None, connect=5.0), follow_redirects=False, trust_env=False
        )
        request.app.state.exposed_client = client
    return client


@proxy.api_route("/system/services/{name}/exposed", methods=_METHODS, include_in_schema=False)
@proxy.api_route(
    "/system/services/{name}/exposed/{path:path}", methods=_METHODS, include_in_schema=False
)
async def forward(request: Request, name: str, path: str = "") -> Response:
    service = _service(request, name)
    host, port, target = _target(request, service)
    url = httpx.URL(f"http://{host}:{port}").copy_with(raw_path=target.encode("latin-1"))
    client = _client(request)
    upstream = client.build_request(
        request.method,
        url,
        headers=_forwarded_headers(request, service),
        content=request.stream(),
    )
    try:
        answer = await client.send(upstream, stream=True)
    except httpx.HTTPError as error:
        raise HTTPException(
            status.HTTP_502_BAD_GATEWAY,
            f"the instance of {name} did not answer on its api_port: {type(error).__name__}",
        ) from None
    headers = [
        (key, value) for key, value in answer.headers.multi_items() if key not in _NOT_FORWARDED
    ]
    response = StreamingResponse(
        answer.aiter_raw(), status_code=answer.status_code, background=BackgroundTask(answer.aclose)
    )
    response.raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    return response


@proxy.websocket("/system/services/{name}/exposed/{path:path}")
async def forward_websocket(websocket: WebSocket, name: str, path: str = "") -> None:
    try:
        service = _service(websocket, name)
        host, port, target = _target(websocket, service)
    except (HTTPException, ServiceNotFound):
        await websocket.close(code=1008)
        return
    protocols = [
        item.strip()
        for item in websocket.headers.get("sec-websocket-protocol", "").split(",")
        if item.strip()
    ]
    headers = [(k, v) for k, v in _forwarded_headers(websocket, service) if k != "origin"]
    try:
        upstream = await websockets.asyncio.client.connect(
            f"ws://{host}:{port}{target}",
            additional_headers=headers,
            subprotocols=[websockets.Subprotocol(p) for p in protocols] or None,
            open_timeout=5,
            max_size=None,
        )
    except (OSError, websockets.WebSocketException, TimeoutError):
        await websocket.close(code=1011)
        return
    await websocket.accept(subprotocol=upstream.subprotocol)
    async with upstream:
        await _bridge(websocket, upstream)


async def _bridge(client: WebSocket, upstream: websockets.asyncio.client.ClientConnection) -> None:
    """Pass messages both ways until either side closes; then close the other."""

    async def inward() -> None:
        async for message in upstream:
            if isinstance(message, bytes):
                await client.send_bytes(message)
            else:
                await client.send_text(message)

    async def outward() -> None:
        while True:
            message = await client.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await upstream.send(message["bytes"])
            elif message.get("text") is not None:
                await upstream.send(message["text"])

    tasks = [asyncio.ensure_future(inward()), asyncio.ensure_future(outward())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await upstream.close()
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await client.close()
