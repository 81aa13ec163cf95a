"""Object headers: what a PUT stores (content type, user metadata, standard response headers)
and what a GET or HEAD answers with."""

from __future__ import annotations

from datetime import datetime
from email.utils import formatdate, parsedate_to_datetime

from oscarpy.s3.errors import S3Error
from oscarpy.storage.store import DEFAULT_CONTENT_TYPE, ObjectDetails

#: Standard headers stored with an object and sent back on GET/HEAD, as S3 does.
STORED_HEADERS = {
    "cache-control": "Cache-Control",
    "content-disposition": "Content-Disposition",
    "content-encoding": "Content-Encoding",
    "content-language": "Content-Language",
    "expires": "Expires",
}
#: GET query parameters that override a response header.
RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}
MAX_METADATA_BYTES = 2048
META_PREFIX = "x-amz-meta-"


def http_date(moment: datetime) -> str:
    return formatdate(moment.timestamp(), usegmt=True)


def parse_http_date(value: str) -> datetime | None:
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


def object_settings(headers: dict[str, str]) -> tuple[str, dict[str, str], dict[str, str]]:
    """Content type, user metadata and stored headers from a PUT's (or upload's) headers."""
    content_type = headers.get("content-type") or DEFAULT_CONTENT_TYPE
    metadata = {
        name[len(META_PREFIX) :]: value
        for name, value in headers.items()
        if name.startswith(META_PREFIX)
    }
    if sum(len(name) + len(value) for name, value in metadata.items()) > MAX_METADATA_BYTES:
        raise S3Error("MetadataTooLarge", "user metadata is limited to 2 KB")
    stored = {}
    for name in STORED_HEADERS:
        value = headers.get(name)
        if name == "content-encoding" and value:
            # aws-chunked is the transfer framing, not a property of the object.
            codings = [part.strip() for part in value.split(",")]
            value = ", ".join(part for part in codings if part and part != "aws-chunked")
        if value:
            stored[name] = value
    return content_type, metadata, stored


def object_headers(found: ObjectDetails, query: dict[str, str]) -> dict[str, str]:
    headers = {
        "ETag": f'"{found.etag}"',
        "Last-Modified": http_date(found.last_modified),
        "Content-Type": found.content_type,
        "Accept-Ranges": "bytes",
    }
    for name, value in found.headers.items():
        if name in STORED_HEADERS:
            headers[STORED_HEADERS[name]] = value
    for name, value in found.metadata.items():
        headers[META_PREFIX + name] = value
    for parameter, header in RESPONSE_OVERRIDES.items():
        if parameter in query:
            headers[header] = query[parameter]
    return headers
