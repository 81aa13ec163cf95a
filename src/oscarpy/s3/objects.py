"""Object operations: PutObject, CopyObject, GetObject, HeadObject, DeleteObject."""

from __future__ import annotations

import re
from typing import BinaryIO
from urllib.parse import unquote

from anyio import to_thread
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from oscarpy.s3.call import S3Call
from oscarpy.s3.documents import checksum_elements, document, elements, iso
from oscarpy.s3.errors import S3Error, from_store_error, not_implemented
from oscarpy.s3.headers import (
    checksum_headers,
    http_date,
    object_headers,
    object_settings,
    parse_http_date,
    refuse_object_lock,
    requested_checksum,
)
from oscarpy.s3.payload import plan_payload, receive_body, with_default_checksum
from oscarpy.storage import checksums
from oscarpy.storage.blobs import WrittenBlob
from oscarpy.storage.checksums import Checksum
from oscarpy.storage.errors import StorageError
from oscarpy.storage.rows import WriteCondition
from oscarpy.storage.store import ObjectDetails, validate_key

READ_CHUNK = 1024 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class BlobResponse(Response):
    """Streams a byte range of an open blob, a MiB at a time read in a worker thread."""

    def __init__(
        self, handle: BinaryIO, start: int, length: int, status: int, headers: dict[str, str]
    ) -> None:
        super().__init__(status_code=status, headers={**headers, "Content-Length": str(length)})
        self.handle = handle
        self.start = start
        self.length = length

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            position, remaining = self.start, self.length
            while remaining > 0:
                chunk = await to_thread.run_sync(
                    _read_at, self.handle, position, min(READ_CHUNK, remaining)
                )
                if not chunk:
                    break
                position += len(chunk)
                remaining -= len(chunk)
                await send(
                    {"type": "http.response.body", "body": chunk, "more_body": remaining > 0}
                )
            if remaining > 0 or self.length == 0:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self.handle.close()


def _read_at(handle: BinaryIO, position: int, size: int) -> bytes:
    import os

    return os.pread(handle.fileno(), size, position)


def parse_range(value: str | None, size: int) -> tuple[int, int] | None:
    """(start, length) of a single `bytes=` range; None means the whole object.

    A malformed or multi-range header is ignored, as S3 does; an unsatisfiable one is 416.
    """
    if not value:
        return None
    match = _RANGE.match(value.strip())
    if match is None or (not match[1] and not match[2]):
        return None
    if not match[1]:
        suffix = int(match[2])
        if suffix == 0:
            raise _invalid_range(size)
        start = max(size - suffix, 0)
        return start, size - start
    start = int(match[1])
    end = int(match[2]) if match[2] else size - 1
    if start >= size or end < start:
        raise _invalid_range(size)
    end = min(end, size - 1)
    return start, end - start + 1


def part_range(found: ObjectDetails, part: str) -> tuple[int, int] | None:
    """(start, length) of part `part` of the object, as GET/HEAD `?partNumber=` selects it: a
    part of the upload it was completed from, or part 1 of an object PUT whole."""
    try:
        number = int(part)
    except ValueError:
        number = 0
    if not 1 <= number <= 10_000:
        raise S3Error(
            "InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive"
        )
    sizes = found.part_sizes or (found.size,)
    if number > len(sizes):
        raise S3Error("InvalidPartNumber", "The requested partnumber is not satisfiable")
    if found.size == 0:
        return None
    return sum(sizes[: number - 1]), sizes[number - 1]


def _invalid_range(size: int) -> S3Error:
    error = S3Error("InvalidRange", "The requested range is not satisfiable")
    error.headers["Content-Range"] = f"bytes */{size}"
    return error


def check_preconditions(found: ObjectDetails, headers: dict[str, str], prefix: str = "") -> bool:
    """Evaluate If-Match & co. (RFC 7232 order). Raises 412; returns True for 304."""
    etag = found.etag
    modified = found.last_modified.replace(microsecond=0)
    if_match = headers.get(prefix + "if-match")
    if if_match is not None:
        tags = [tag.strip().strip('"') for tag in if_match.split(",")]
        if "*" not in tags and etag not in tags:
            raise S3Error(
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
            )
    else:
        since = parse_http_date(headers.get(prefix + "if-unmodified-since", ""))
        if since is not None and modified > since:
            raise S3Error(
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
            )
    if_none_match = headers.get(prefix + "if-none-match")
    if if_none_match is not None:
        tags = [tag.strip().strip('"') for tag in if_none_match.split(",")]
        return "*" in tags or etag in tags
    since = parse_http_date(headers.get(prefix + "if-modified-since", ""))
    return since is not None and modified <= since


def requested_version(value: str | None) -> str | None | bool:
    """A `versionId` as the store takes it: None for "null", False when none is given."""
    if value is None:
        return False
    if not value:
        raise S3Error("InvalidArgument", "Version id cannot be the empty string")
    return None if value == "null" else value


def version_headers(found: ObjectDetails) -> dict[str, str]:
    headers = {}
    if found.version_id is not None:
        headers["x-amz-version-id"] = found.version_id
    if found.delete_marker:
        headers["x-amz-delete-marker"] = "true"
    return headers


def _named_delete_marker(found: ObjectDetails) -> S3Error:
    """S3's answer to reading a delete marker named by its version id: 405."""
    error = S3Error(
        "MethodNotAllowed", "The specified method is not allowed against this resource."
    )
    error.headers.update(version_headers(found))
    error.headers["Last-Modified"] = http_date(found.last_modified)
    return error


async def _open(call: S3Call) -> tuple[ObjectDetails, BinaryIO]:
    """The object (or the version `versionId` names) and a handle on its bytes: S3's 405 for a
    delete marker named by version, 404 with `x-amz-delete-marker` when one is the latest."""
    version = requested_version(call.query.get("versionId"))
    if version is not False:
        assert not isinstance(version, bool)
        found, handle = await call.run(call.store.open_version, call.bucket, call.key, version)
        if handle is None:
            raise _named_delete_marker(found)
        return found, handle
    try:
        return await call.run(call.store.open_object, call.bucket, call.key)
    except S3Error as error:
        if error.code == "NoSuchKey":
            marker = await call.run(call.store.latest_delete_marker, call.bucket, call.key)
            if marker is not None:
                error.headers.update(version_headers(marker))
        raise


async def get_object(call: S3Call, *, head: bool = False) -> Response:
    found, handle = await _open(call)
    try:
        headers = object_headers(found, call.query)
        headers.update(version_headers(found))
        if check_preconditions(found, call.headers):
            handle.close()
            return Response(
                status_code=304,
                headers={"ETag": headers["ETag"], "Last-Modified": headers["Last-Modified"]},
            )
        part = call.query.get("partNumber")
        if part is not None:
            if "range" in call.headers:
                raise S3Error(
                    "InvalidRequest", "Cannot specify both Range header and partNumber query"
                )
            selected = part_range(found, part)
            if found.part_sizes:
                headers["x-amz-mp-parts-count"] = str(len(found.part_sizes))
        else:
            selected = parse_range(call.headers.get("range"), found.size)
        if call.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED":
            headers.update(checksum_headers(_answered_checksum(found, part, selected)))
    except BaseException:
        handle.close()
        raise
    status = 200
    start, length = 0, found.size
    if selected is not None:
        start, length = selected
        status = 206
        headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{found.size}"
    if head:
        handle.close()
        return Response(status_code=status, headers={**headers, "Content-Length": str(length)})
    return BlobResponse(handle, start, length, status, headers)


def _answered_checksum(
    found: ObjectDetails, part: str | None, selected: tuple[int, int] | None
) -> Checksum | None:
    """The checksum a GET or HEAD answers with: the object's for the whole of it; a part's own
    for one part of a composite multipart object; none for a byte range (S3 has none)."""
    checksum = found.checksum
    if checksum is None:
        return None
    if part is not None and found.part_sizes:
        if checksum.type != checksums.COMPOSITE or not checksum.parts:
            return None
        return Checksum(checksum.algorithm, checksum.parts[int(part) - 1], checksums.COMPOSITE)
    if selected is not None and (selected[0], selected[1]) != (0, found.size):
        return None
    return checksum


async def write_condition(call: S3Call, *, check_now: bool = True) -> WriteCondition | None:
    """The `If-Match` / `If-None-Match: *` of a write (PUT, copy, completion). The store checks
    it atomically when the write commits; `check_now` checks it once before, so that a doomed
    big upload fails before its body is received."""
    if_match = call.headers.get("if-match")
    if_none_match = call.headers.get("if-none-match")
    if if_match is None and if_none_match is None:
        return None
    if if_none_match is not None and if_none_match.strip() != "*":
        raise not_implemented("If-None-Match with an ETag on a write (only '*' is)")
    condition = WriteCondition(
        if_match=if_match.strip().strip('"') if if_match is not None else None,
        if_none_match=if_none_match is not None,
    )
    if not check_now:
        return condition
    found = await call.run(call.store.head, call.bucket, call.key)
    try:
        condition.check(None if found is None else found.etag, call.key)
    except StorageError as error:
        raise from_store_error(error) from error
    return condition


async def put_object(call: S3Call) -> Response:
    validate_or_raise(call.key)
    refuse_object_lock(call.headers)
    if "x-amz-copy-source" in call.headers:
        return await copy_object(call)
    content_type, metadata, stored = object_settings(call.headers)
    big = int(call.headers.get("content-length") or 0) > READ_CHUNK
    if big:
        # Fail before receiving a big body for a bucket that is not there.
        if not await call.run(call.store.bucket_exists, call.bucket):
            raise S3Error("NoSuchBucket", f"bucket {call.bucket!r} does not exist")
    condition = await write_condition(call, check_now=big)
    plan = with_default_checksum(plan_payload(call.headers, call.auth))

    def commit(blob: WrittenBlob) -> ObjectDetails:
        return call.store.commit_object(
            call.bucket,
            call.key,
            blob,
            content_type=content_type,
            metadata=metadata,
            headers=stored,
            condition=condition,
        )

    found = await receive_body(
        call.request.stream(),
        plan,
        call.auth,
        call.store.blobs,
        commit,
        call.inline_writes,
    )
    return Response(
        status_code=200,
        headers={
            "ETag": f'"{found.etag}"',
            **checksum_headers(found.checksum),
            **version_headers(found),
        },
    )


def validate_or_raise(key: str) -> None:
    from oscarpy.storage.errors import InvalidObjectKey

    try:
        validate_key(key)
    except InvalidObjectKey as error:
        raise from_store_error(error) from error


def copy_source(call: S3Call) -> tuple[str, str, str | None | bool]:
    """(bucket, key, version as `requested_version` gives it) of `x-amz-copy-source`."""
    value = call.headers["x-amz-copy-source"]
    value, _, version = value.partition("?versionId=")
    value = unquote(value)
    bucket, _, key = value.lstrip("/").partition("/")
    if not bucket or not key:
        raise S3Error("InvalidArgument", "x-amz-copy-source must be <bucket>/<key>")
    return bucket, key, requested_version(unquote(version) if version else None)


async def source_object(call: S3Call) -> tuple[ObjectDetails, BinaryIO]:
    """The object (or version) `x-amz-copy-source` names, and a handle on its bytes."""
    bucket, key, version = copy_source(call)
    if version is False:
        return await call.run(call.store.open_object, bucket, key)
    assert not isinstance(version, bool)
    found, handle = await call.run(call.store.open_version, bucket, key, version)
    if handle is None:
        raise S3Error(
            "InvalidRequest",
            "The source of a copy request may not specifically refer to a delete marker by "
            "version id.",
        )
    return found, handle


async def copy_object(call: S3Call) -> Response:
    source_bucket, source_key, source_version = copy_source(call)
    directive = call.headers.get("x-amz-metadata-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise S3Error("InvalidArgument", "x-amz-metadata-directive must be COPY or REPLACE")
    same = (source_bucket, source_key) == (call.bucket, call.key) and source_version is False
    if same and directive == "COPY":
        raise S3Error(
            "InvalidRequest",
            "This copy request is illegal because it is trying to copy an object to itself "
            "without changing the object's metadata, storage class, website redirect location "
            "or encryption attributes.",
        )
    source, handle = await source_object(call)
    handle.close()
    if check_preconditions(source, call.headers, prefix="x-amz-copy-source-"):
        raise S3Error(
            "PreconditionFailed", "At least one of the pre-conditions you specified did not hold"
        )
    replace = object_settings(call.headers) if directive == "REPLACE" else None
    condition = await write_condition(call)
    found = await call.run(
        call.store.copy_object,
        source_bucket,
        source_key,
        call.bucket,
        call.key,
        replace=replace,
        condition=condition,
        checksum_algorithm=requested_checksum(call.headers),
        source_version=source_version,
    )
    body = elements(LastModified=iso(found.last_modified), ETag=f'"{found.etag}"')
    body += checksum_elements(found.checksum)
    headers = version_headers(found)
    if source.version_id is not None:
        headers["x-amz-copy-source-version-id"] = source.version_id
    return Response(
        document("CopyObjectResult", body), media_type="application/xml", headers=headers
    )


async def delete_object(call: S3Call) -> Response:
    version = requested_version(call.query.get("versionId"))
    if version is not False:
        assert not isinstance(version, bool)
        removed = await call.run(call.store.delete_version, call.bucket, call.key, version)
        headers = {"x-amz-version-id": call.query["versionId"]}
        if removed is not None and removed.delete_marker:
            headers["x-amz-delete-marker"] = "true"
        return Response(status_code=204, headers=headers)
    await call.run(call.store.delete_objects, call.bucket, [call.key])
    marker = await call.run(call.store.latest_delete_marker, call.bucket, call.key)
    return Response(status_code=204, headers=version_headers(marker) if marker else {})


OBJECT_ATTRIBUTES = ("ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize")


def _header_number(call: S3Call, name: str, default: int) -> int:
    try:
        return int(call.headers.get(name, default))
    except ValueError as error:
        raise S3Error("InvalidArgument", f"{name} must be an integer") from error


async def get_object_attributes(call: S3Call) -> Response:
    """GetObjectAttributes: the attributes `x-amz-object-attributes` names, in one document."""
    wanted = {
        name.strip() for name in call.headers.get("x-amz-object-attributes", "").split(",")
    } - {""}
    if not wanted:
        raise S3Error(
            "InvalidArgument",
            "The x-amz-object-attributes header specifying the attributes to be retrieved is "
            "either missing or empty",
        )
    if not wanted <= set(OBJECT_ATTRIBUTES):
        raise S3Error("InvalidArgument", "Invalid attribute name specified.")
    found = await _attributes_of(call)
    body = ""
    if "ETag" in wanted:
        body += elements(ETag=found.etag)
    if "Checksum" in wanted and found.checksum is not None:
        body += f"<Checksum>{checksum_elements(found.checksum)}</Checksum>"
    if "ObjectParts" in wanted and found.part_sizes:
        body += _object_parts(call, found)
    if "StorageClass" in wanted:
        body += elements(StorageClass="STANDARD")
    if "ObjectSize" in wanted:
        body += elements(ObjectSize=found.size)
    return Response(
        document("GetObjectAttributesResponse", body),
        media_type="application/xml",
        headers={"Last-Modified": http_date(found.last_modified), **version_headers(found)},
    )


async def _attributes_of(call: S3Call) -> ObjectDetails:
    """The object or the version `versionId` names, with GET's errors (405 for a delete marker
    named by id, 404 with `x-amz-delete-marker` when one is the latest)."""
    version = requested_version(call.query.get("versionId"))
    if version is not False:
        assert not isinstance(version, bool)
        found = await call.run(call.store.find_version, call.bucket, call.key, version)
        if found.delete_marker:
            raise _named_delete_marker(found)
        return found
    current = await call.run(call.store.head, call.bucket, call.key)
    if current is not None:
        return current
    if not await call.run(call.store.bucket_exists, call.bucket):
        raise S3Error("NoSuchBucket", f"bucket {call.bucket!r} does not exist")
    error = S3Error("NoSuchKey", f"object {call.key!r} not found")
    marker = await call.run(call.store.latest_delete_marker, call.bucket, call.key)
    if marker is not None:
        error.headers.update(version_headers(marker))
    raise error


def _object_parts(call: S3Call, found: ObjectDetails) -> str:
    """The `ObjectParts` of a multipart object: a page of its parts, sizes and checksums."""
    limit = min(max(_header_number(call, "x-amz-max-parts", 1000), 0), 1000)
    marker = max(_header_number(call, "x-amz-part-number-marker", 0), 0)
    numbers = range(marker + 1, min(marker + limit, len(found.part_sizes)) + 1)
    part_checksums = found.checksum.parts if found.checksum is not None else ()
    entries = ""
    for number in numbers:
        entries += "<Part>" + elements(PartNumber=number, Size=found.part_sizes[number - 1])
        if found.checksum is not None and number <= len(part_checksums):
            entries += elements(**{found.checksum.element: part_checksums[number - 1]})
        entries += "</Part>"
    head = elements(
        PartsCount=len(found.part_sizes),
        PartNumberMarker=marker,
        NextPartNumberMarker=numbers[-1] if numbers else marker,
        MaxParts=limit,
        IsTruncated=marker + limit < len(found.part_sizes),
    )
    return f"<ObjectParts>{head}{entries}</ObjectParts>"
