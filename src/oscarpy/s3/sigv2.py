"""AWS Signature Version 2 as S3 defines it: the string a client signs, and its signature.

boto3 still presigns `get_object` URLs with it by default (`AWSAccessKeyId`, `Signature`,
`Expires`), and older tools sign headers with it (`Authorization: AWS key:signature`). The
checks (constant-time comparison, expiry, clock skew) live with SigV4's in `sigv4.Verifier`;
this module only builds what is signed. Reference: "Signing and Authenticating REST Requests"
in the Amazon S3 developer guide.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import unquote

#: Query parameters that are part of the signed resource (the sub-resources and the
#: response header overrides); any other parameter is not signed.
SIGNED_PARAMETERS = frozenset(
    {
        "accelerate",
        "acl",
        "cors",
        "delete",
        "lifecycle",
        "location",
        "logging",
        "notification",
        "object-lock",
        "partNumber",
        "policy",
        "replication",
        "requestPayment",
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
        "response-content-language",
        "response-content-type",
        "response-expires",
        "restore",
        "retention",
        "legal-hold",
        "select",
        "select-type",
        "tagging",
        "torrent",
        "uploadId",
        "uploads",
        "versionId",
        "versioning",
        "versions",
        "website",
    }
)
#: Query parameters of a presigned URL that carry its signature or headers it signed (boto3
#: moves a signed Content-Type there), not request parameters.
PRESIGNED_PARAMETERS = frozenset(
    {"AWSAccessKeyId", "Signature", "Expires", "content-type", "content-md5"}
)


def canonical_resource(path: str, raw_query: str) -> str:
    """The path as sent (with the bucket, even for virtual-host-style requests) and the signed
    query parameters in name order, values decoded."""
    signed: list[tuple[str, str | None]] = []
    for item in raw_query.split("&"):
        name, equals, value = item.partition("=")
        if name in SIGNED_PARAMETERS:
            signed.append((name, unquote(value) if equals else None))
    if not signed:
        return path
    signed.sort(key=lambda pair: pair[0])
    return (
        path
        + "?"
        + "&".join(name if value is None else f"{name}={value}" for name, value in signed)
    )


def string_to_sign(
    method: str,
    headers: Mapping[str, str],
    date: str,
    amz_headers: Mapping[str, str],
    resource: str,
) -> str:
    """`date` is the Date header (empty when x-amz-date is sent), or a presigned URL's Expires;
    `amz_headers` are the request's x-amz-* headers, lower-case names, values joined by ','."""
    lines = [method, headers.get("content-md5", ""), headers.get("content-type", ""), date]
    lines.extend(f"{name}:{amz_headers[name]}" for name in sorted(amz_headers))
    lines.append(resource)
    return "\n".join(lines)


def signature(secret: str, string_to_sign: bytes) -> str:
    digest = hmac.new(secret.encode(), string_to_sign, hashlib.sha1)
    return base64.b64encode(digest.digest()).decode()
