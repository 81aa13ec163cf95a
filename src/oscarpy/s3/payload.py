"""Receiving a request body into a blob, checking everything the client declared about it.

Bodies arrive either as-is (with a hex SHA-256 or `UNSIGNED-PAYLOAD`) or in the `aws-chunked`
framing (`STREAMING-*` payload hashes), where each chunk may carry a signature chained from the
request's and trailers may carry a checksum of the whole payload. Bytes are written to disk as
they arrive, in batches of about a MiB handed to a worker thread, so memory stays flat whatever
the size; a body that fails any check is dropped before anything becomes visible.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

from anyio import to_thread

from oscarpy.s3.errors import S3Error
from oscarpy.s3.sigv4 import (
    EMPTY_SHA256,
    STREAMING_SIGNED,
    STREAMING_SIGNED_TRAILER,
    STREAMING_UNSIGNED_TRAILER,
    UNSIGNED_PAYLOAD,
    Authorization,
    chunk_string_to_sign,
    sign,
    signatures_equal,
    trailer_string_to_sign,
)
from oscarpy.storage import checksums
from oscarpy.storage.blobs import Blobs, RunningHash, WrittenBlob
from oscarpy.storage.checksums import Checksum, RunningChecksum

T = TypeVar("T")
log = logging.getLogger("oscarpy.s3")
FLUSH_BYTES = 1024 * 1024
#: A body this small is written from the event loop: a thread hop would cost more.
INLINE_BYTES = 64 * 1024
MAX_CHUNK_HEADER = 4096
_HEX_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class PayloadPlan:
    """What the headers say about the body, decided before reading it."""

    chunked: bool = False
    signed_chunks: bool = False
    trailer: bool = False
    sha256: str | None = None
    content_md5: bytes | None = None
    checksum_algorithm: str | None = None
    """The additional checksum computed of the body (`storage.checksums.ALGORITHMS`)."""
    checksum_value: str | None = None
    """Its value as declared in a header; else it comes in a trailer, or is only computed."""
    checksum_expected: bool = False
    """Whether the client declares a value (header or trailer) that the body must match."""
    decoded_length: int | None = None
    content_length: int | None = None
    """Of a body that is not `aws-chunked`, when the request says it."""

    @property
    def small(self) -> bool:
        """A body known to fit in `INLINE_BYTES`, so it is received in memory."""
        length = self.content_length
        return not self.chunked and length is not None and length <= INLINE_BYTES


def plan_payload(headers: Mapping[str, str], auth: Authorization) -> PayloadPlan:
    plan = PayloadPlan()
    declared = auth.payload_hash
    if declared in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER):
        plan.chunked = True
        plan.signed_chunks = declared != STREAMING_UNSIGNED_TRAILER
        plan.trailer = declared != STREAMING_SIGNED
        length = headers.get("x-amz-decoded-content-length")
        if length is None:
            raise S3Error("MissingContentLength", "x-amz-decoded-content-length is required")
        try:
            plan.decoded_length = int(length)
        except ValueError as error:
            raise S3Error(
                "InvalidArgument", "x-amz-decoded-content-length is not a number"
            ) from error
    elif _HEX_SHA256.match(declared) or declared == UNSIGNED_PAYLOAD:
        plan.sha256 = None if declared == UNSIGNED_PAYLOAD else declared
        plan.content_length = _content_length(headers)
    else:
        raise S3Error(
            "InvalidArgument",
            "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, a STREAMING-* value or a hex SHA-256",
        )
    md5 = headers.get("content-md5")
    if md5 is not None:
        try:
            plan.content_md5 = base64.b64decode(md5, validate=True)
        except binascii.Error as error:
            raise S3Error("InvalidDigest", "Content-MD5 is not valid base64") from error
        if len(plan.content_md5) != 16:
            raise S3Error("InvalidDigest", "Content-MD5 is not an MD5 digest")
    named = [name for name in checksums.ALGORITHMS if f"x-amz-checksum-{name}" in headers]
    if len(named) > 1:
        raise S3Error(
            "InvalidRequest",
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
        )
    for algorithm in named:
        value = headers[f"x-amz-checksum-{algorithm}"].strip()
        if not checksums.valid_value(algorithm, value):
            raise S3Error(
                "InvalidRequest", f"Value for x-amz-checksum-{algorithm} header is invalid."
            )
        plan.checksum_algorithm, plan.checksum_value = algorithm, value
        plan.checksum_expected = True
    trailer = headers.get("x-amz-trailer", "").strip().lower()
    if plan.trailer and trailer.startswith("x-amz-checksum-"):
        algorithm = trailer.removeprefix("x-amz-checksum-")
        if algorithm not in checksums.ALGORITHMS:
            raise S3Error("InvalidRequest", f"The {trailer} trailer is not a known checksum")
        plan.checksum_algorithm = algorithm
        plan.checksum_expected = True
    return plan


def with_default_checksum(plan: PayloadPlan) -> PayloadPlan:
    """S3 computes a CRC64NVME checksum of an upload that declares none, and keeps it: so do
    we, as the body streams in."""
    if plan.checksum_algorithm is None:
        plan.checksum_algorithm = checksums.DEFAULT
    return plan


def _content_length(headers: Mapping[str, str]) -> int | None:
    try:
        return int(headers["content-length"])
    except (KeyError, ValueError):
        return None  # the HTTP server has already refused a malformed one


class ChunkedDecoder:
    """Incremental parser of the `aws-chunked` framing, verifying chunk signatures as it goes."""

    def __init__(self, auth: Authorization, *, signed: bool, trailer: bool) -> None:
        self._auth = auth
        self._signed = signed
        self._trailer = trailer
        self._buffer = bytearray()
        self._state = "header"
        self._remaining = 0
        self._chunk_signature = ""
        self._chunk_hash = hashlib.sha256()
        self._previous = auth.signature
        self._trailer_lines: list[bytes] = []
        self.trailers: dict[str, str] = {}

    def feed(self, data: bytes) -> list[bytes]:
        output: list[bytes] = []
        buffer = self._buffer
        if self._state == "data" and not buffer and len(data) <= self._remaining:
            # The common case of a big chunk: pass the bytes through without buffering.
            self._take(data, output)
            return output
        buffer += data
        while buffer:
            if self._state == "header":
                end = buffer.find(b"\r\n")
                if end < 0:
                    if len(buffer) > MAX_CHUNK_HEADER:
                        raise S3Error("IncompleteBody", "malformed aws-chunked chunk header")
                    break
                self._start_chunk(bytes(buffer[:end]))
                del buffer[: end + 2]
            elif self._state == "data":
                piece = bytes(buffer[: self._remaining])
                del buffer[: len(piece)]
                self._take(piece, output)
            elif self._state == "data-end":
                if len(buffer) < 2:
                    break
                if buffer[:2] != b"\r\n":
                    raise S3Error("IncompleteBody", "aws-chunked chunk not followed by CRLF")
                del buffer[:2]
                self._state = "header"
            elif self._state == "trailer":
                end = buffer.find(b"\r\n")
                if end < 0:
                    if len(buffer) > MAX_CHUNK_HEADER:
                        raise S3Error("IncompleteBody", "malformed aws-chunked trailer")
                    break
                line = bytes(buffer[:end])
                del buffer[: end + 2]
                if line:
                    self._trailer_lines.append(line)
                else:
                    self._end_trailers()
            elif self._state == "final":
                if len(buffer) < 2:
                    break
                del buffer[:2]
                self._state = "done"
            else:
                raise S3Error("IncompleteBody", "data after the end of the aws-chunked body")
        return output

    def _take(self, piece: bytes, output: list[bytes]) -> None:
        if self._signed:
            self._chunk_hash.update(piece)
        output.append(piece)
        self._remaining -= len(piece)
        if self._remaining == 0:
            self._verify_chunk()
            self._state = "data-end"

    def _start_chunk(self, line: bytes) -> None:
        size_text, _, extensions = line.decode("latin-1").partition(";")
        try:
            size = int(size_text.strip(), 16)
        except ValueError as error:
            raise S3Error("IncompleteBody", "malformed aws-chunked chunk size") from error
        self._chunk_signature = ""
        for extension in extensions.split(";"):
            name, _, value = extension.partition("=")
            if name.strip() == "chunk-signature":
                self._chunk_signature = value.strip().lower()
        if self._signed and not self._chunk_signature:
            raise S3Error("SignatureDoesNotMatch", "a chunk of a signed stream has no signature")
        self._chunk_hash = hashlib.sha256()
        if size == 0:
            self._verify_chunk()
            self._state = "trailer" if self._trailer else "final"
        else:
            self._remaining = size
            self._state = "data"

    def _verify_chunk(self) -> None:
        if not self._signed:
            return
        digest = self._chunk_hash.hexdigest() if self._remaining == 0 else EMPTY_SHA256
        expected = sign(
            self._auth.signing_key, chunk_string_to_sign(self._auth, self._previous, digest)
        )
        if not signatures_equal(expected, self._chunk_signature):
            raise S3Error("SignatureDoesNotMatch", "a chunk signature does not match")
        self._previous = expected

    def _end_trailers(self) -> None:
        signature = ""
        canonical = b""
        for line in self._trailer_lines:
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "x-amz-trailer-signature":
                signature = value.lower()
                continue
            self.trailers[name] = value
            canonical += f"{name}:{value}\n".encode("latin-1")
        if self._signed:
            expected = sign(
                self._auth.signing_key,
                trailer_string_to_sign(self._auth, self._previous, canonical),
            )
            if not signatures_equal(expected, signature):
                raise S3Error("SignatureDoesNotMatch", "the trailer signature does not match")
        self._state = "done"

    def close(self) -> dict[str, str]:
        # The CRLF after the last zero-size chunk is sometimes left out; accept that.
        if self._state not in ("done", "final"):
            raise S3Error("IncompleteBody", "the aws-chunked body ended before its last chunk")
        return self.trailers


class _Writer(Protocol):
    size: int

    def track(self, running: RunningHash) -> None: ...

    def write(self, data: bytes) -> None: ...

    def md5_digest(self) -> bytes: ...

    @property
    def sha256_hex(self) -> str | None: ...


class DocumentWriter:
    """Collects a small body (an XML document) in memory, with the same checks as a blob."""

    def __init__(self, limit: int, *, sha256: bool) -> None:
        self.limit = limit
        self.data = bytearray()
        self.size = 0
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha256 = hashlib.sha256() if sha256 else None
        self._extra: list[RunningHash] = []

    def track(self, running: RunningHash) -> None:
        self._extra.append(running)

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise S3Error("MalformedXML", "the request document is too large")
        self.data += data
        self._md5.update(data)
        if self._sha256 is not None:
            self._sha256.update(data)
        for running in self._extra:
            running.update(data)

    def md5_digest(self) -> bytes:
        return self._md5.digest()

    @property
    def sha256_hex(self) -> str | None:
        return None if self._sha256 is None else self._sha256.hexdigest()


class _Sink:
    """Runs in a worker thread: writes a batch (the writer hashes it)."""

    def __init__(self, writer: _Writer) -> None:
        self.writer = writer

    def __call__(self, batch: list[bytes]) -> None:
        self.writer.write(batch[0] if len(batch) == 1 else b"".join(batch))


async def _receive(
    stream: AsyncIterator[bytes], plan: PayloadPlan, auth: Authorization, writer: _Writer
) -> Checksum | None:
    """Receive the body into `writer` and check it; returns its additional checksum."""
    checksum = checksums.running(plan.checksum_algorithm) if plan.checksum_algorithm else None
    if checksum is not None:
        writer.track(checksum)
    sink = _Sink(writer)
    decoder = (
        ChunkedDecoder(auth, signed=plan.signed_chunks, trailer=plan.trailer)
        if plan.chunked
        else None
    )
    batch: list[bytes] = []
    batched = 0
    # Double buffering: one batch is written and hashed in a worker thread while the next is
    # received, so the socket keeps flowing; at most two batches are in memory.
    loop = asyncio.get_running_loop()
    writing: asyncio.Future[None] | None = None
    try:
        async for data in stream:
            pieces = decoder.feed(data) if decoder is not None else [data]
            for piece in pieces:
                batch.append(piece)
                batched += len(piece)
            if batched >= FLUSH_BYTES:
                if writing is not None:
                    await writing
                writing = loop.run_in_executor(None, sink, batch)
                batch, batched = [], 0
    finally:
        if writing is not None:
            # Never leave a write running on a writer the caller may abort and close.
            await asyncio.wait([writing])
            writing.exception()  # retrieved here, so never reported as lost; raised below
    if writing is not None:
        writing.result()
    if batch:
        if batched <= INLINE_BYTES:
            sink(batch)
        else:
            await to_thread.run_sync(sink, batch)
    trailers = decoder.close() if decoder is not None else {}
    return _verify(plan, writer, checksum, trailers)


async def receive_body(
    stream: AsyncIterator[bytes],
    plan: PayloadPlan,
    auth: Authorization,
    blobs: Blobs,
    commit: Callable[[WrittenBlob], T],
    inline: InlineWrites | None = None,
) -> T:
    """Stream the body to a new blob, verify it, then fsync it and `commit` it (one worker
    thread call for both; a small body may be written inline, see `InlineWrites`). The blob
    stays only if every check passes and `commit` succeeds; `commit` itself removes the blob
    if it fails (as `ObjectStore.commit_object` does)."""
    if plan.small:
        return await _receive_small(stream, plan, auth, blobs, commit, inline)
    writer = blobs.writer(sha256=plan.sha256 is not None)
    try:
        checksum = await _receive(stream, plan, auth, writer)
    except BaseException:
        writer.abort()
        raise
    # `finish` removes the blob if it fails; `commit` does if it fails.
    return await to_thread.run_sync(lambda: commit(replace(writer.finish(), checksum=checksum)))


class InlineWrites:
    """Decides where a small body's blob is written, fsynced and committed: on the event loop
    itself, or in a worker thread.

    On a local disk that work takes a fraction of a millisecond, and even when background
    writeback slows each fsync to a few milliseconds, doing it inline beats handing it to a
    thread and back (a thread wake-up and the GIL twice) on a busy host: bursts of small PUTs
    run about 1.3 times faster (`bench/s3_throughput.py`). But the event loop also serves
    every other request, so the work stays inline only while its moving average stays under
    `LIMIT_SECONDS` (a network file system or a saturated disk goes over): then writes go to
    worker threads, where their fsyncs overlap, for `PAUSE_SECONDS`, and are tried inline
    again after that.
    """

    LIMIT_SECONDS = 0.01
    PAUSE_SECONDS = 1.0
    _WEIGHT = 0.2

    def __init__(self) -> None:
        self.average = 0.0
        self._paused_until = 0.0

    def allowed(self) -> bool:
        return time.monotonic() >= self._paused_until

    def record(self, seconds: float) -> None:
        self.average += self._WEIGHT * (seconds - self.average)
        if self.average > self.LIMIT_SECONDS:
            log.debug(
                "small writes averaged %.1f ms on the event loop; worker threads take them "
                "for %.0f s",
                self.average * 1000,
                self.PAUSE_SECONDS,
            )
            self._paused_until = time.monotonic() + self.PAUSE_SECONDS
            # Writes after the pause start from half the limit, not from a history of fast
            # ones: a very slow one pauses again at once, while the first few, which still
            # meet the thread writes of the pause on the disk, do not.
            self.average = self.LIMIT_SECONDS / 2


async def _receive_small(
    stream: AsyncIterator[bytes],
    plan: PayloadPlan,
    auth: Authorization,
    blobs: Blobs,
    commit: Callable[[WrittenBlob], T],
    inline: InlineWrites | None,
) -> T:
    """Receive and check a small body in memory, then create, write, fsync and commit its blob
    in one go: inline while `inline` allows it, else in one worker-thread call (creating the
    file from the event loop and committing from a thread would cost two hand-offs)."""
    received = DocumentWriter(INLINE_BYTES, sha256=plan.sha256 is not None)
    checksum = await _receive(stream, plan, auth, received)
    data = bytes(received.data)

    def write_and_commit() -> T:
        return commit(replace(blobs.write_whole(data), checksum=checksum))

    if inline is None or not inline.allowed():
        return await to_thread.run_sync(write_and_commit)
    started = time.perf_counter()
    try:
        return write_and_commit()
    finally:
        inline.record(time.perf_counter() - started)


async def receive_document(
    stream: AsyncIterator[bytes], plan: PayloadPlan, auth: Authorization, limit: int
) -> bytes:
    """Receive a small body in memory with the same checks (DeleteObjects, completions)."""
    writer = DocumentWriter(limit, sha256=plan.sha256 is not None)
    await _receive(stream, plan, auth, writer)
    return bytes(writer.data)


def _verify(
    plan: PayloadPlan,
    writer: _Writer,
    checksum: RunningChecksum | None,
    trailers: dict[str, str],
) -> Checksum | None:
    if plan.decoded_length is not None and writer.size != plan.decoded_length:
        raise S3Error(
            "IncompleteBody",
            f"received {writer.size} bytes, "
            f"x-amz-decoded-content-length says {plan.decoded_length}",
        )
    if plan.sha256 is not None and writer.sha256_hex != plan.sha256:
        raise S3Error(
            "XAmzContentSHA256Mismatch",
            "the provided x-amz-content-sha256 does not match what was computed",
        )
    if plan.content_md5 is not None and writer.md5_digest() != plan.content_md5:
        raise S3Error("BadDigest", "the Content-MD5 you specified did not match what we received")
    if checksum is None or plan.checksum_algorithm is None:
        return None
    computed = checksums.encode(checksum.digest())
    if plan.checksum_expected:
        expected = plan.checksum_value or trailers.get(f"x-amz-checksum-{plan.checksum_algorithm}")
        if expected is None:
            raise S3Error(
                "InvalidRequest", f"the x-amz-checksum-{plan.checksum_algorithm} is missing"
            )
        if computed != expected.strip():
            raise S3Error(
                "BadDigest",
                f"The {plan.checksum_algorithm.upper()} you specified did not match "
                "the calculated checksum.",
            )
    return Checksum(plan.checksum_algorithm, computed)
