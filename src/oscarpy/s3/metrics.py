"""Counts every S3 request for `/metrics`: operation, status code, latency and bytes moved.

An ASGI middleware around `S3App`, so that no operation handler changes. The operation is found
the way the app routes the request (`S3App.address`, `choose`), and named from a fixed table:
its label can take only as many values as there are operations, whatever the client sends.
"""

from __future__ import annotations

import time
from urllib.parse import unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oscarpy.observability.metrics import PlatformMetrics
from oscarpy.s3.app import S3App, choose, parse_query
from oscarpy.s3.errors import S3Error

#: Handler names whose S3 operation is not their name in CamelCase.
_OPERATIONS = {
    "create_upload": "CreateMultipartUpload",
    "complete_upload": "CompleteMultipartUpload",
    "abort_upload": "AbortMultipartUpload",
    "list_uploads": "ListMultipartUploads",
    "get_location": "GetBucketLocation",
    "get_versioning": "GetBucketVersioning",
    "list_versions": "ListObjectVersions",
    "get_acl": "GetAcl",
    "get_policy": "GetBucketPolicy",
    "put_policy": "PutBucketPolicy",
    "delete_policy": "DeleteBucketPolicy",
    "list_objects_v2": "ListObjectsV2",
    "get_object_lock": "GetObjectLockConfiguration",
    "put_object_lock": "PutObjectLockConfiguration",
}
UNSUPPORTED = "Unsupported"
"""Requests no operation answers (501), whatever they asked for."""


_known: dict[tuple[str, bool, bool, bytes, bool], str] = {}
"""Names already found, by what decides them: most requests repeat a few shapes. Cleared when
it grows past `_KNOWN_LIMIT` (query strings carry values: prefixes, tokens)."""
_KNOWN_LIMIT = 4096


def operation_name(app: S3App, scope: Scope) -> str:
    method: str = scope["method"]
    raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    host = ""
    copy = False
    for name, value in scope["headers"]:
        if name == b"host":
            host = value.decode("latin-1")
        elif name == b"x-amz-copy-source":
            copy = True
    bucket, key = app.address(host, unquote(raw_path))
    shape = (method, bool(bucket), bool(key), scope["query_string"], copy)
    found = _known.get(shape)
    if found is None:
        if len(_known) >= _KNOWN_LIMIT:
            _known.clear()
        found = _known[shape] = _name(method, bucket, key, shape[3], copy)
    return found


def _name(method: str, bucket: str, key: str, raw_query: bytes, copy: bool) -> str:
    query = parse_query(raw_query.decode("latin-1"))
    try:
        handler = choose(method, bucket, key, query)
    except S3Error:
        return UNSUPPORTED
    name = handler.__name__.lstrip("_")
    if name == "list_bucket":
        return "ListObjectsV2" if query.get("list-type") == "2" else "ListObjects"
    if name == "object_lock_setting":
        setting = "Retention" if "retention" in query else "LegalHold"
        return f"{method.capitalize()}Object{setting}"
    if copy and name in ("put_object", "upload_part"):
        return "CopyObject" if name == "put_object" else "UploadPartCopy"
    return _OPERATIONS.get(name) or "".join(part.capitalize() for part in name.split("_"))


class S3Metrics:
    """The middleware; see the module docstring."""

    def __init__(self, app: S3App, metrics: PlatformMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        operation = operation_name(self.app, scope)
        received = 0
        sent = 0
        code = 499  # the client went away before an answer began

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            nonlocal sent, code
            if message["type"] == "http.response.start":
                code = message["status"]
            else:
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            self.metrics.s3_answered(operation, code, time.perf_counter() - started, received, sent)


def instrument(app: ASGIApp, metrics: PlatformMetrics | None) -> ASGIApp:
    """`app` (the S3 front-end) counted by `metrics`, or as it is when metrics are off."""
    if metrics is None:
        return app
    if not isinstance(app, S3App):
        raise TypeError(f"S3 metrics need the S3 front-end, not {type(app).__name__}")
    return S3Metrics(app, metrics)
