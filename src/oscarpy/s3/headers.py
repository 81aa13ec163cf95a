"""Object headers: what a PUT stores (content type, user metadata, standard response headers)
and what a GET or HEAD answers with."""

from __future__ import annotations

import base64
from datetime import datetime
from email.header import decode_header, make_header
from email.utils import formatdate, parsedate_to_datetime

from oscarpy.s3.errors import S3Error
from oscarpy.storage import checksums
from oscarpy.storage.checksums import Checksum
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


def metadata_text(value: str) -> str:
    """A metadata value as text. S3 stores what a client sends as UTF-8 bytes (received here
    decoded as Latin-1) or as RFC 2047 encoded words (`=?UTF-8?B?...?=`) as the text they
    encode."""
    if value.isascii():
        if value.startswith("=?") and value.endswith("?="):
            try:
                return str(make_header(decode_header(value)))
            except (ValueError, LookupError, UnicodeDecodeError):
                return value
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def metadata_header(value: str) -> str:
    """A stored metadata value as S3 sends it back: as it is when ASCII, else as an RFC 2047
    encoded word (an HTTP header carries Latin-1 at most)."""
    if value.isascii():
        return value
    return "=?UTF-8?B?" + base64.b64encode(value.encode("utf-8")).decode() + "?="


def object_settings(headers: dict[str, str]) -> tuple[str, dict[str, str], dict[str, str]]:
    """Content type, user metadata and stored headers from a PUT's (or upload's) headers."""
    content_type = headers.get("content-type") or DEFAULT_CONTENT_TYPE
    metadata = {
        name[len(META_PREFIX) :]: metadata_text(value)
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
        headers[META_PREFIX + name] = metadata_header(value)
    for parameter, header in RESPONSE_OVERRIDES.items():
        if parameter in query:
            headers[header] = query[parameter]
    return headers


def checksum_headers(checksum: Checksum | None) -> dict[str, str]:
    """The `x-amz-checksum-<algorithm>` and `x-amz-checksum-type` headers of a checksum."""
    if checksum is None:
        return {}
    return {checksum.header: checksum.value, "x-amz-checksum-type": checksum.type}


def requested_checksum(headers: dict[str, str]) -> str | None:
    """The algorithm named by `x-amz-checksum-algorithm` (lower-case), or None."""
    named = headers.get("x-amz-checksum-algorithm")
    if named is None:
        return None
    algorithm = named.strip().lower()
    if algorithm not in checksums.ALGORITHMS:
        raise S3Error(
            "InvalidRequest", f"Checksum algorithm provided is unsupported: {named.strip()}"
        )
    return algorithm


#: Headers that put a new object under Object Lock (retention or legal hold).
OBJECT_LOCK_HEADERS = (
    "x-amz-object-lock-mode",
    "x-amz-object-lock-retain-until-date",
    "x-amz-object-lock-legal-hold",
)


def refuse_object_lock(headers: dict[str, str]) -> None:
    """No bucket here has Object Lock: a write asking for retention or a legal hold gets S3's
    answer for such a bucket, rather than an object silently left unprotected."""
    if any(name in headers for name in OBJECT_LOCK_HEADERS):
        raise S3Error("InvalidRequest", "Bucket is missing Object Lock Configuration")
