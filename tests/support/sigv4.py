"""SigV4 headers made by botocore's own signer, for tests that send S3 requests byte for byte."""

from __future__ import annotations

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


class _Signer(S3SigV4Auth):  # type: ignore[misc]
    """botocore's signer, with the payload hash we choose (UNSIGNED-PAYLOAD, STREAMING-...)."""

    content_sha256: str | None = None

    def payload(self, request: AWSRequest) -> str:
        if self.content_sha256 is not None:
            return self.content_sha256
        return str(super().payload(request))


def signed_headers(
    method: str,
    url: str,
    access_key: str,
    secret_key: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    content_sha256: str | None = None,
) -> dict[str, str]:
    """The headers of a request signed over `url` exactly as it will be sent; `content_sha256`
    replaces the hash of `body` (which botocore would compute)."""
    request = AWSRequest(method=method, url=url, data=body)
    for name, value in (headers or {}).items():
        request.headers[name] = value
    signer = _Signer(Credentials(access_key, secret_key), "s3", "us-east-1")
    signer.content_sha256 = content_sha256
    signer.add_auth(request)
    return dict(request.headers.items())


def signature_of(headers: dict[str, str]) -> str:
    """The signature in the Authorization header of `signed_headers`."""
    return headers["Authorization"].rpartition("Signature=")[2]
