"""Request bodies streamed to a file under a size limit, never held whole in memory."""

from __future__ import annotations

from pathlib import Path

from fastapi import HTTPException, Request, status


class BodyLimit:
    """The largest body a route takes, and the setting that raises it (named in the 413)."""

    def __init__(self, limit: int, setting: str) -> None:
        self.limit = limit
        self.setting = setting

    def too_large(self) -> HTTPException:
        return HTTPException(
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            detail=f"the request body is larger than {self.limit} bytes ({self.setting}); "
            f"send the input through storage instead, or raise OSCAR_{self.setting.upper()}",
        )


async def save_body(request: Request, path: Path, limit: BodyLimit) -> int:
    """Write the body to `path` and return its size; 413 as soon as it passes the limit (a
    declared Content-Length over it is refused before a byte is read). The caller removes
    `path` whatever happens."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit.limit:
        raise limit.too_large()
    size = 0
    with path.open("wb") as handle:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit.limit:
                raise limit.too_large()
            handle.write(chunk)
    return size
