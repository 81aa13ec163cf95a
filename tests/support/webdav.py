"""A real WebDAV server on loopback (WsgiDAV on cheroot), serving a temporary folder with one
Basic-auth login, to play the dCache of a `webdav.<id>` provider."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.server import free_port

LOGIN = "dav-user"
PASSWORD = "dav-secret-password-42"


@dataclass(frozen=True)
class WebdavServer:
    url: str
    root: Path
    """The folder it serves: a test writes inputs and reads outputs here directly."""

    def provider(self, password: str = PASSWORD) -> dict[str, str]:
        """An entry of `storage_providers.webdav`."""
        return {"hostname": self.url, "login": LOGIN, "password": password}


@contextmanager
def webdav_server(root: Path) -> Iterator[WebdavServer]:
    from cheroot import wsgi
    from wsgidav.wsgidav_app import WsgiDAVApp  # type: ignore[import-untyped]

    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    app = WsgiDAVApp(
        {
            "host": "127.0.0.1",
            "port": port,
            "provider_mapping": {"/": str(root)},
            "http_authenticator": {
                "domain_controller": None,  # SimpleDomainController with simple_dc below
                "accept_basic": True,
                "accept_digest": False,
                "default_to_digest": False,
            },
            "simple_dc": {"user_mapping": {"*": {LOGIN: {"password": PASSWORD}}}},
            "verbose": 0,
            "logging": {"enable_loggers": []},
        }
    )
    server = wsgi.Server(("127.0.0.1", port), app)
    thread = threading.Thread(target=server.start, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.request("OPTIONS", url + "/", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.02)
    try:
        yield WebdavServer(url, root)
    finally:
        server.stop()
        thread.join(timeout=5)
