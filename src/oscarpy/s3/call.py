"""One S3 request once authenticated and addressed: what every operation handler receives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from anyio import to_thread
from starlette.requests import Request

from oscarpy.auth.principal import ADMIN, Principal
from oscarpy.s3.errors import S3Error, from_store_error
from oscarpy.s3.payload import InlineWrites
from oscarpy.s3.sigv4 import Authorization
from oscarpy.storage.errors import StorageError
from oscarpy.storage.store import ObjectStore

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class S3Call:
    request: Request
    store: ObjectStore
    auth: Authorization
    owner: str
    region: str
    bucket: str
    key: str
    query: dict[str, str]
    headers: dict[str, str]
    """Lower-case header names, first value."""
    inline_writes: InlineWrites | None = None
    """Shared by the requests of one event loop."""
    principal: Principal | None = ADMIN
    """Who signed the request (the admin's key pair is the admin); None: nobody (anonymous)."""

    def require_bucket(self) -> str:
        if not self.bucket:
            raise S3Error("InvalidRequest", "this operation needs a bucket")
        return self.bucket

    async def run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a blocking store call in a worker thread, translating store errors to S3 ones."""
        try:
            return await to_thread.run_sync(lambda: function(*args, **kwargs))
        except StorageError as error:
            raise from_store_error(error) from error

    async def body(self, limit: int) -> bytes:
        """A small request body (an XML document), refusing anything bigger than `limit`."""
        received = bytearray()
        async for piece in self.request.stream():
            received += piece
            if len(received) > limit:
                raise S3Error("MalformedXML", "the request document is too large")
        return bytes(received)
