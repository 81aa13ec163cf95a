"""Answer `/path/` exactly as `/path`, without a redirect.

OSCAR's clients call e.g. `/system/config/`; a 307 to the slashless path would make some HTTP
clients drop the Authorization header, so the path is normalised before routing instead.
An exposed service's paths are its own (`/dir/` is not `/dir` to a web server): left as sent.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

_EXPOSED = re.compile(r"/system/services/[^/]+/exposed/")


class StripTrailingSlash:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if len(path) > 1 and path.endswith("/") and not _EXPOSED.match(path):
                stripped = path.rstrip("/") or "/"
                scope = dict(scope, path=stripped)
                raw_path = scope.get("raw_path")
                if raw_path:
                    scope["raw_path"] = raw_path.rstrip(b"/") or b"/"
        await self.app(scope, receive, send)
