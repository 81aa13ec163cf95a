"""CORS for both ports: pages of the configured origins (OSCAR's dashboard served elsewhere) may
call the REST API and the S3 API from a browser.

Browsers send credentials explicitly here (Basic or Bearer headers set by the page, SigV4
signatures), never cookies, so answers allow no credentials; preflights (`OPTIONS`) are answered
before any authentication. `*` is honoured only when configured.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS")
#: Preflight answers are cached by the browser this long (seconds).
MAX_AGE = 600


def with_cors(app: ASGIApp, origins: Sequence[str], expose: Sequence[str] = ()) -> ASGIApp:
    """`app` answering CORS for `origins` (unchanged when there are none); `expose` names the
    response headers a page's script may read."""
    if not origins:
        return app
    return CORSMiddleware(
        app,
        allow_origins=list(origins),
        allow_methods=list(METHODS),
        allow_headers=["*"],
        expose_headers=list(expose),
        max_age=MAX_AGE,
    )
