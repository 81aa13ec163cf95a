"""The S3-compatible front-end of the embedded object store."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from oscarpy.config import Settings
from oscarpy.credentials import AdminCredentials
from oscarpy.storage.store import ObjectStore

NOT_IMPLEMENTED_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NotImplemented</Code>'
    "<Message>A header or operation you provided is not implemented.</Message></Error>"
)


async def not_implemented(_request: Request) -> Response:
    return Response(NOT_IMPLEMENTED_XML, status_code=501, media_type="application/xml")


def create_s3_app(store: ObjectStore, admin: AdminCredentials, settings: Settings) -> Starlette:
    methods = ["GET", "PUT", "POST", "DELETE", "HEAD"]
    return Starlette(routes=[Route("/{path:path}", not_implemented, methods=methods)])
