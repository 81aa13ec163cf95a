"""The platform `oscar serve` runs, built in the test process, for route-level tests.

`server.Platform` builds it exactly as `oscar serve` does (state DB, store, engine, `/run`
pools, the REST app with the dashboard mounted, the S3 app); the REST app is called
in-process through httpx's `ASGITransport`, with no socket and no subprocess to start. The
S3 app is served on the socket `Platform` bound, in a thread, because what `/system/config`
hands out is an endpoint that real S3 clients connect to. Tests that must see `oscar serve`
as a process, or a client library on the wire, use `tests.support.server` instead.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from anyio.from_thread import BlockingPortal, start_blocking_portal
from starlette.types import ASGIApp

from oscarpy.config import Settings
from oscarpy.log import RedactingFormatter
from oscarpy.server import Platform

API_URL = "http://testserver"


class SyncASGITransport(httpx.BaseTransport):
    """httpx's `ASGITransport` for a synchronous client: each request runs on the event loop
    of a portal thread, and app exceptions reach the test instead of becoming a 500."""

    def __init__(self, app: ASGIApp, portal: BlockingPortal) -> None:
        self._asgi = httpx.ASGITransport(app=app)
        self._portal = portal

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def send() -> httpx.Response:
            response = await self._asgi.handle_async_request(request)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=content)

        response: httpx.Response = self._portal.call(send)
        return response


@dataclass
class InProcessServer:
    """A `Platform` and how to reach it; quacks like `RunningServer` where routes are concerned."""

    platform: Platform
    portal: BlockingPortal
    log_stream: io.StringIO

    @property
    def url(self) -> str:
        return API_URL

    @property
    def s3_url(self) -> str:
        return self.platform.s3_endpoint

    @property
    def username(self) -> str:
        return self.platform.admin.username

    @property
    def password(self) -> str:
        return self.platform.admin.password

    @property
    def auth(self) -> tuple[str, str]:
        return (self.username, self.password)

    @property
    def data_dir(self) -> Path:
        return self.platform.settings.data_dir

    def client(self, *, authenticated: bool = True, **options: Any) -> httpx.Client:
        """A client calling the REST app in this process, with the admin's credentials unless
        `authenticated` is false."""
        return httpx.Client(
            transport=SyncASGITransport(self.platform.api_app, self.portal),
            base_url=API_URL,
            auth=self.auth if authenticated else None,
            timeout=30,
            **options,
        )

    def log(self) -> str:
        """What the platform logged so far, through the formatter `oscar serve` uses."""
        return self.log_stream.getvalue()


@contextmanager
def in_process_server(data_dir: Path, **settings: Any) -> Iterator[InProcessServer]:
    """Build, start, and afterwards stop the platform as `server.Platform.run` does."""
    config = Settings(data_dir=data_dir, host="127.0.0.1", port=0, s3_port=0, **settings)
    with _captured_log() as stream, start_blocking_portal() as portal:
        platform = Platform(config)
        s3 = uvicorn.Server(uvicorn.Config(platform.s3_app, log_config=None))
        thread = threading.Thread(target=s3.run, kwargs={"sockets": [platform.s3_socket]})
        try:
            for service in platform.background:
                service.start()
            thread.start()
            deadline = time.monotonic() + 10
            while not s3.started and thread.is_alive() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert s3.started, "the S3 app did not start"
            yield InProcessServer(platform, portal, stream)
        finally:
            s3.should_exit = True
            if thread.is_alive():
                thread.join(10)
            for service in reversed(platform.background):
                service.stop()
            platform.database.close()
            platform.close_sockets()


@contextmanager
def _captured_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
