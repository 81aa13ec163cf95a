"""Bad input to the S3 front-end, generated with Hypothesis (few examples, no deadline): every
answer is a 4xx S3 error with its proper code, never a 5xx; a refused upload leaves nothing
behind; nothing is ever written outside the data directory; and the server keeps answering."""

from __future__ import annotations

import base64
import hashlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import sigv4
from tests.support.server import RunningServer, start_server

PASSWORD = "bad-input-password-7"
BUCKET = "fuzzed"
FEW = settings(
    max_examples=12,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass
class Answer:
    status: int
    body: bytes

    @property
    def code(self) -> str | None:
        if not self.body.strip().startswith(b"<"):
            return None
        try:
            return ElementTree.fromstring(self.body).findtext("Code")
        except ElementTree.ParseError:
            return None


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("s3-bad-input")
    running = start_server(root / "data", env={"OSCAR_PASSWORD": PASSWORD})
    before = _files_outside(running)
    try:
        answer = request(running, "PUT", f"/{BUCKET}")
        assert answer.status == 200, answer
        yield running
        assert request(running, "GET", f"/{BUCKET}?list-type=2").status == 200
        assert "Traceback" not in running.log(), running.log()[-4000:]
    finally:
        running.stop()
    assert _files_outside(running) == before, "something was written outside the data directory"
    assert list((running.data_dir / "blobs" / "incoming").glob("*")) == []


def _files_outside(server: RunningServer) -> set[Path]:
    """Every file under the test's temporary directory that is not in the data directory."""
    root = server.data_dir.parent
    return {
        path
        for path in root.rglob("*")
        if server.data_dir not in path.parents and path != server.log_path
    }


def signed_headers(
    server: RunningServer,
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    content_sha256: str | None = None,
) -> dict[str, str]:
    """SigV4 headers for a request, signed over `target` exactly as it will be sent."""
    return sigv4.signed_headers(
        method,
        f"{server.s3_url}{target}",
        server.username,
        PASSWORD,
        body,
        headers,
        content_sha256,
    )


def raw(
    server: RunningServer,
    method: str,
    target: str,
    headers: dict[str, str],
    body: bytes,
    content_length: int | None = None,
    half_close: bool = False,
) -> Answer | None:
    """Send a request byte for byte (no client tidies the path or the framing); `half_close`
    then closes the sending side, as a client that died mid-body. None when the server closed
    the connection without an answer."""
    length = len(body) if content_length is None else content_length
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{server.s3_port}"]
    lines += [f"{name}: {value}" for name, value in headers.items() if name.lower() != "host"]
    lines += [f"Content-Length: {length}", "Connection: close"]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    with socket.create_connection(("127.0.0.1", server.s3_port), timeout=20) as connection:
        connection.sendall(head + body)
        if half_close:
            connection.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    if not received:
        return None
    status_line, _, rest = received.partition(b"\r\n")
    _, _, content = rest.partition(b"\r\n\r\n")
    return Answer(int(status_line.split()[1]), content)


def request(
    server: RunningServer,
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> Answer:
    signed = signed_headers(server, method, target, body, headers)
    answer = raw(server, method, target, signed, body)
    assert answer is not None, f"no answer to {method} {target}"
    return answer


def exists(server: RunningServer, key: str) -> bool:
    from urllib.parse import quote

    answer = request(server, "HEAD", f"/{BUCKET}/{quote(key, safe='/')}")
    assert answer.status in (200, 404), answer
    return answer.status == 200


def refused(answer: Answer | None, *codes: str) -> None:
    """A 4xx with one of `codes` (any S3 code when none given), or a dropped connection."""
    if answer is None:
        return
    assert 400 <= answer.status < 500, answer
    if codes:
        assert answer.code in codes, answer


def assert_alive(server: RunningServer) -> None:
    assert httpx.get(f"{server.url}/health", timeout=5).text == "Ok"


# --- bodies that do not match what the headers declare -------------------------------------


@FEW
@given(size=st.integers(1, 200_000), data=st.data())
def test_a_truncated_body_is_never_stored(
    server: RunningServer, size: int, data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, size - 1), label="bytes actually sent")
    body = bytes(range(256)) * (size // 256 + 1)
    body = body[:size]
    key = f"truncated/{size}-{cut}"
    headers = signed_headers(server, "PUT", f"/{BUCKET}/{key}", body)
    answer = raw(
        server, "PUT", f"/{BUCKET}/{key}", headers, body[:cut], content_length=size, half_close=True
    )
    refused(answer, "IncompleteBody", "BadDigest", "XAmzContentSHA256Mismatch")
    assert not exists(server, key)


@FEW
@given(
    size=st.integers(2, 50_000),
    shortfall=st.integers(1, 1000),
    signed_payload=st.booleans(),
)
def test_a_content_length_shorter_than_the_body_is_refused_or_stores_what_it_declared(
    server: RunningServer, size: int, shortfall: int, signed_payload: bool
) -> None:
    declared = max(1, size - shortfall)
    body = hashlib.sha256(str(size).encode()).digest() * (size // 32 + 1)
    body = body[:size]
    key = f"short-length/{size}-{declared}-{signed_payload}"
    content_sha256 = None if signed_payload else "UNSIGNED-PAYLOAD"
    headers = signed_headers(server, "PUT", f"/{BUCKET}/{key}", body, content_sha256=content_sha256)
    answer = raw(server, "PUT", f"/{BUCKET}/{key}", headers, body, content_length=declared)
    assert answer is not None
    if signed_payload:  # the hash of the whole body cannot match the declared part
        refused(answer, "XAmzContentSHA256Mismatch", "BadDigest")
        assert not exists(server, key)
    else:  # HTTP framing wins: exactly the declared bytes are the object
        assert answer.status == 200, answer
        got = request(server, "GET", f"/{BUCKET}/{key}")
        assert got.body == body[:declared]
    assert_alive(server)


@FEW
@given(
    data=st.binary(min_size=1, max_size=5000),
    signature=st.one_of(
        st.text("0123456789abcdef", min_size=64, max_size=64),
        st.text(min_size=0, max_size=80).filter(lambda text: "\r" not in text and "\n" not in text),
    ),
    framing=st.sampled_from(["signed", "bad size", "no terminator", "extra bytes"]),
)
def test_aws_chunked_bodies_with_bad_signatures_or_framing_are_refused(
    server: RunningServer, data: bytes, signature: str, framing: str
) -> None:
    key = (
        f"chunked/{hashlib.md5(data + signature.encode()).hexdigest()}-{framing.replace(' ', '-')}"
    )
    size = f"{len(data):x}" if framing != "bad size" else "zz"
    body = f"{size};chunk-signature={signature}\r\n".encode() + data + b"\r\n"
    if framing != "no terminator":
        body += f"0;chunk-signature={signature}\r\n\r\n".encode()
    if framing == "extra bytes":
        body += b"trailing garbage"
    headers = signed_headers(
        server,
        "PUT",
        f"/{BUCKET}/{key}",
        headers={
            "Content-Encoding": "aws-chunked",
            "X-Amz-Decoded-Content-Length": str(len(data)),
        },
        content_sha256="STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    )
    answer = raw(server, "PUT", f"/{BUCKET}/{key}", headers, body)
    refused(answer, "SignatureDoesNotMatch", "IncompleteBody", "InvalidArgument", "InvalidRequest")
    assert not exists(server, key)


# --- malformed XML documents ---------------------------------------------------------------

_DELETE = b'<?xml version="1.0"?><Delete><Object><Key>keep.txt</Key></Object></Delete>'
_BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
    b"<Delete><Object><Key>&b;</Key></Object></Delete>"
)
_documents = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
    st.integers(1, len(_DELETE) - 1).map(lambda cut: _DELETE[:cut]),
    st.just(_BOMB),
    st.just(b"<Delete><Object></Object></Delete>"),
    st.just(b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1001 + b"</Delete>"),
)


@FEW
@given(document=_documents)
def test_malformed_delete_objects_documents_delete_nothing(
    server: RunningServer, document: bytes
) -> None:
    if not exists(server, "keep.txt"):
        assert request(server, "PUT", f"/{BUCKET}/keep.txt", b"kept").status == 200
    md5 = base64.b64encode(hashlib.md5(document).digest()).decode()
    answer = request(server, "POST", f"/{BUCKET}?delete=", document, {"Content-MD5": md5})
    refused(answer, "MalformedXML")
    assert exists(server, "keep.txt")


@pytest.fixture(scope="module")
def upload(server: RunningServer) -> tuple[str, str]:
    """A multipart upload with one part uploaded: (upload id, the part's ETag)."""
    created = request(server, "POST", f"/{BUCKET}/multi.bin?uploads=")
    assert created.status == 200, created
    upload_id = ElementTree.fromstring(created.body).findtext(
        "{http://s3.amazonaws.com/doc/2006-03-01/}UploadId"
    )
    assert upload_id
    part = request(server, "PUT", f"/{BUCKET}/multi.bin?partNumber=1&uploadId={upload_id}", b"p")
    assert part.status == 200, part
    return upload_id, "etag"


_complete_documents = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
    st.just(b"<CompleteMultipartUpload><Part><PartNumber>x</PartNumber></Part>"),
    st.just(b"<CompleteMultipartUpload><Part><ETag>a</ETag></Part></CompleteMultipartUpload>"),
    st.just(
        b"<CompleteMultipartUpload><Part><PartNumber>one</PartNumber><ETag>a</ETag></Part>"
        b"</CompleteMultipartUpload>"
    ),
    st.just(
        b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>wrong</ETag></Part>"
        b"</CompleteMultipartUpload>"
    ),
    st.just(_BOMB.replace(b"Delete", b"CompleteMultipartUpload")),
)


@FEW
@given(document=_complete_documents)
def test_malformed_complete_multipart_documents_complete_nothing(
    server: RunningServer, upload: tuple[str, str], document: bytes
) -> None:
    upload_id, _ = upload
    answer = request(server, "POST", f"/{BUCKET}/multi.bin?uploadId={upload_id}", document)
    refused(answer, "MalformedXML", "InvalidPart", "InvalidPartOrder", "InvalidArgument")
    assert not exists(server, "multi.bin")


# --- headers and keys ----------------------------------------------------------------------


@FEW
@given(size=st.integers(20_000, 200_000), many=st.booleans())
def test_oversized_headers_are_refused_and_the_server_keeps_answering(
    server: RunningServer, size: int, many: bool
) -> None:
    if many:
        extra = {f"X-Amz-Meta-H{index}": "v" * 60 for index in range(size // 80)}
    else:
        extra = {"X-Amz-Meta-Huge": "v" * size}
    key = f"headers/{size}-{many}"
    headers = signed_headers(server, "PUT", f"/{BUCKET}/{key}", b"x")
    answer = raw(server, "PUT", f"/{BUCKET}/{key}", {**headers, **extra}, b"x")
    refused(answer)  # 431/400 from the HTTP layer, or MetadataTooLarge / SignatureDoesNotMatch
    assert not exists(server, key)
    assert_alive(server)


_tricks = st.sampled_from(
    ["../", "..%2F", "%2e%2e/", "/", "./", "..\\", "%00", "~/", "//", "%2F..%2F..%2F", "%E2%80%AE"]
)
_key_parts = st.lists(
    st.one_of(_tricks, st.text("abc.-_/", min_size=1, max_size=8)), min_size=1, max_size=8
)


@FEW
@given(parts=_key_parts, target=st.sampled_from(["etc/passwd", "oscar.db", "credentials.json"]))
def test_keys_with_path_tricks_are_stored_as_data_or_refused(
    server: RunningServer, parts: list[str], target: str
) -> None:
    key_in_path = "".join(parts) + target
    content = f"payload for {key_in_path}".encode()
    answer = request(server, "PUT", f"/{BUCKET}/{key_in_path}", content)
    if answer.status == 200:
        got = request(server, "GET", f"/{BUCKET}/{key_in_path}")
        assert got.status == 200 and got.body == content, got
    else:
        refused(answer)
    # The store's own files are untouched whatever the key said.
    assert (server.data_dir / "oscar.db").read_bytes().startswith(b"SQLite format 3")
    assert not (server.data_dir / "etc" / "passwd").exists()


@FEW
@given(signature=st.text(st.characters(min_codepoint=1, max_codepoint=255), max_size=70))
def test_any_request_signature_is_refused_with_an_s3_error(
    server: RunningServer, signature: str
) -> None:
    signature = signature.replace("\r", "").replace("\n", "").replace(",", "")
    headers = signed_headers(server, "GET", f"/{BUCKET}?list-type=2")
    authorization = headers["Authorization"]
    headers["Authorization"] = authorization[: authorization.rindex("=") + 1] + signature
    refused(raw(server, "GET", f"/{BUCKET}?list-type=2", headers, b""))
