"""SigV4 verification and the aws-chunked decoder against the worked example of the S3 docs
("Signature Calculations for the Authorization Header: Transferring Payload in Multiple Chunks")."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from oscarpy.s3.errors import S3Error
from oscarpy.s3.payload import ChunkedDecoder
from oscarpy.s3.sigv4 import Credentials, Verifier

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ACCESS = "AKIAIOSFODNN7EXAMPLE"
SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
CHUNK_SIGNATURES = [
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
]
HEADERS = {
    "host": ["s3.amazonaws.com"],
    "x-amz-date": ["20130524T000000Z"],
    "x-amz-storage-class": ["REDUCED_REDUNDANCY"],
    "authorization": [
        f"AWS4-HMAC-SHA256 Credential={ACCESS}/20130524/us-east-1/s3/aws4_request,"
        "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
        f"x-amz-decoded-content-length;x-amz-storage-class,Signature={SEED}"
    ],
    "x-amz-content-sha256": ["STREAMING-AWS4-HMAC-SHA256-PAYLOAD"],
    "content-encoding": ["aws-chunked"],
    "x-amz-decoded-content-length": ["66560"],
    "content-length": ["66824"],
}
WHEN = datetime(2013, 5, 24, 0, 1, tzinfo=UTC)


def example_body(signatures: list[str]) -> bytes:
    sizes = [65536, 1024, 0]
    body = b""
    for size, signature in zip(sizes, signatures, strict=True):
        body += f"{size:x};chunk-signature={signature}\r\n".encode() + b"a" * size + b"\r\n"
    return body


def verify(headers: dict[str, list[str]] = HEADERS, secret: str = SECRET) -> object:
    verifier = Verifier(Credentials(ACCESS, secret))
    return verifier.verify("PUT", "/examplebucket/chunkObject.txt", "", headers, now=WHEN)


def test_the_documented_chunked_upload_verifies_and_decodes() -> None:
    auth = verify()
    decoder = ChunkedDecoder(auth, signed=True, trailer=False)  # type: ignore[arg-type]
    body = example_body(CHUNK_SIGNATURES)
    assert len(body) == 66824
    received = b""
    for start in range(0, len(body), 1000):  # arbitrary split points across the framing
        received += b"".join(decoder.feed(body[start : start + 1000]))
    decoder.close()
    assert received == b"a" * 66560


def test_a_wrong_chunk_signature_is_refused() -> None:
    auth = verify()
    decoder = ChunkedDecoder(auth, signed=True, trailer=False)  # type: ignore[arg-type]
    tampered = [CHUNK_SIGNATURES[0], "0" * 64, CHUNK_SIGNATURES[2]]
    with pytest.raises(S3Error) as raised:
        decoder.feed(example_body(tampered))
    assert raised.value.code == "SignatureDoesNotMatch"


def test_a_body_cut_short_is_incomplete() -> None:
    decoder = ChunkedDecoder(verify(), signed=True, trailer=False)  # type: ignore[arg-type]
    decoder.feed(example_body(CHUNK_SIGNATURES)[: 70000 // 2])
    with pytest.raises(S3Error) as raised:
        decoder.close()
    assert raised.value.code == "IncompleteBody"


def test_header_errors_have_their_s3_codes() -> None:
    with pytest.raises(S3Error) as raised:
        verify(secret="not the secret")
    assert raised.value.code == "SignatureDoesNotMatch"
    with pytest.raises(S3Error) as raised:
        Verifier(Credentials("someone-else", SECRET)).verify(
            "PUT", "/examplebucket/chunkObject.txt", "", HEADERS, now=WHEN
        )
    assert raised.value.code == "InvalidAccessKeyId"
    with pytest.raises(S3Error) as raised:
        Verifier(Credentials(ACCESS, SECRET)).verify(
            "PUT", "/examplebucket/chunkObject.txt", "", HEADERS, now=datetime.now(UTC)
        )
    assert raised.value.code == "RequestTimeTooSkewed"
    anonymous = {name: value for name, value in HEADERS.items() if name != "authorization"}
    with pytest.raises(S3Error) as raised:
        verify(anonymous)
    assert (raised.value.code, raised.value.status) == ("AccessDenied", 403)


@pytest.mark.parametrize(
    "amz_date",
    [
        "",
        "2013-05-24T00:00:00Z",
        "20130524T000000",
        "20130524T000000Z\n",
        "20131324T000000Z",
        "20130524T250000Z",
        "２０１３0524T000000Z",
        "Fri, 24 May 2013 00:00:00 GMT",
    ],
)
def test_a_malformed_request_date_is_access_denied(amz_date: str) -> None:
    with pytest.raises(S3Error) as raised:
        verify({**HEADERS, "x-amz-date": [amz_date]})
    assert (raised.value.code, raised.value.status) == ("AccessDenied", 403)
    assert "X-Amz-Date" in raised.value.message
