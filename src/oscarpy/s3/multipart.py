"""Multipart uploads: Create, UploadPart, UploadPartCopy, Complete, Abort, ListParts and
ListMultipartUploads."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from typing import BinaryIO

from anyio import to_thread
from starlette.responses import Response

from oscarpy.s3.buckets import xml_response
from oscarpy.s3.call import S3Call
from oscarpy.s3.documents import (
    MAX_REQUEST_DOCUMENT,
    checksum_elements,
    elements,
    iso,
    owner,
    parse,
    text_of,
)
from oscarpy.s3.errors import S3Error
from oscarpy.s3.headers import object_settings, refuse_object_lock, requested_checksum
from oscarpy.s3.objects import source_object, validate_or_raise, version_headers, write_condition
from oscarpy.s3.payload import (
    plan_payload,
    receive_body,
    receive_document,
    with_default_checksum,
)
from oscarpy.storage import checksums
from oscarpy.storage.blobs import BlobWriter, WrittenBlob
from oscarpy.storage.checksums import Checksum

MAX_PART_NUMBER = 10_000
MAX_LISTED = 1000
COPY_CHUNK = 1024 * 1024
_COPY_RANGE = re.compile(r"bytes=(\d+)-(\d+)")


def _upload_checksum(headers: dict[str, str]) -> Checksum | None:
    """The checksum algorithm and type (`x-amz-checksum-algorithm`, `x-amz-checksum-type`) a
    new upload's parts are checked with, as S3 allows them."""
    algorithm = requested_checksum(headers)
    kind = headers.get("x-amz-checksum-type", "").strip().upper()
    if algorithm is None:
        if kind:
            raise S3Error(
                "InvalidRequest",
                "The x-amz-checksum-type header can only be used with the "
                "x-amz-checksum-algorithm header.",
            )
        return None
    kind = kind or checksums.default_type(algorithm)
    if kind not in (checksums.COMPOSITE, checksums.FULL_OBJECT):
        raise S3Error("InvalidRequest", "Value for x-amz-checksum-type header is invalid.")
    if not checksums.supports(algorithm, kind):
        raise S3Error(
            "InvalidRequest",
            f"The {algorithm.upper()} checksum algorithm does not support the {kind} type.",
        )
    return Checksum(algorithm, "", kind)


async def create_upload(call: S3Call) -> Response:
    validate_or_raise(call.key)
    refuse_object_lock(call.headers)
    content_type, metadata, stored = object_settings(call.headers)
    checksum = _upload_checksum(call.headers)
    upload_id = await call.run(
        call.store.create_upload, call.bucket, call.key, content_type, metadata, stored, checksum
    )
    body = elements(Bucket=call.bucket, Key=call.key, UploadId=upload_id)
    headers = {}
    if checksum is not None:
        headers = {
            "x-amz-checksum-algorithm": checksum.algorithm.upper(),
            "x-amz-checksum-type": checksum.type,
        }
    response = xml_response("InitiateMultipartUploadResult", body)
    response.headers.update(headers)
    return response


def _part_number(call: S3Call) -> int:
    try:
        number = int(call.query["partNumber"])
    except ValueError as error:
        raise S3Error("InvalidArgument", "partNumber must be an integer") from error
    if not 1 <= number <= MAX_PART_NUMBER:
        raise S3Error("InvalidArgument", "partNumber must be between 1 and 10000")
    return number


async def upload_part(call: S3Call) -> Response:
    number = _part_number(call)
    upload_id = call.query["uploadId"]
    # Fail before receiving the body when the upload is not there.
    upload = await call.run(call.store.get_upload, call.bucket, call.key, upload_id)
    if "x-amz-copy-source" in call.headers:
        return await _upload_part_copy(call, upload_id, number, upload.checksum)
    plan = plan_payload(call.headers, call.auth)
    wanted = upload.checksum
    if wanted is not None:
        if plan.checksum_algorithm not in (None, wanted.algorithm):
            raise S3Error(
                "InvalidRequest",
                f"Checksum Type mismatch occurred, expected checksum Type: {wanted.algorithm}, "
                f"actual checksum Type: {plan.checksum_algorithm}",
            )
        plan.checksum_algorithm = wanted.algorithm  # computed, if the client sent none
    else:
        with_default_checksum(plan)

    def commit(blob: WrittenBlob) -> tuple[str, Checksum | None]:
        etag = call.store.commit_part(call.bucket, call.key, upload_id, number, blob)
        return etag, blob.checksum

    etag, checksum = await receive_body(
        call.request.stream(),
        plan,
        call.auth,
        call.store.blobs,
        commit,
        call.inline_writes,
    )
    headers = {"ETag": f'"{etag}"'}
    if checksum is not None:
        headers[checksum.header] = checksum.value
    return Response(status_code=200, headers=headers)


def _copy_range(
    handle: BinaryIO, start: int, length: int, writer: BlobWriter, algorithm: str | None
) -> WrittenBlob:
    """The range copied to a new blob, with its checksum of `algorithm` if one is given."""
    running = checksums.running(algorithm) if algorithm is not None else None
    if running is not None:
        writer.track(running)
    try:
        with handle:
            position, remaining = start, length
            while remaining > 0:
                chunk = os.pread(handle.fileno(), min(COPY_CHUNK, remaining), position)
                if not chunk:
                    break
                writer.write(chunk)
                position += len(chunk)
                remaining -= len(chunk)
        blob = writer.finish()
        if running is not None and algorithm is not None:
            blob = replace(blob, checksum=Checksum(algorithm, checksums.encode(running.digest())))
        return blob
    except BaseException:
        writer.abort()
        raise


def _copy_source_range(value: str, size: int) -> tuple[int, int]:
    """(start, length) of `bytes=first-last`, both given and within the source. Another form
    (a GET's open-ended and suffix ones too) is S3's 400 `InvalidArgument`; a range that is
    empty or beyond the source its `InvalidRange`."""
    match = _COPY_RANGE.fullmatch(value.strip())
    if match is None:
        raise S3Error(
            "InvalidArgument",
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first "
            "and last are the zero-based offsets of the first and last bytes to copy",
        )
    first, last = int(match[1]), int(match[2])
    if first > last or last >= size:
        raise S3Error(
            "InvalidRange", f"Range specified is not valid for source object of size: {size}"
        )
    return first, last - first + 1


async def _upload_part_copy(
    call: S3Call, upload_id: str, number: int, wanted: Checksum | None
) -> Response:
    found, handle = await source_object(call)
    try:
        start, length = 0, found.size
        if "x-amz-copy-source-range" in call.headers:
            start, length = _copy_source_range(call.headers["x-amz-copy-source-range"], found.size)
    except BaseException:
        handle.close()
        raise
    algorithm = wanted.algorithm if wanted is not None else None
    blob = await to_thread.run_sync(
        _copy_range, handle, start, length, call.store.writer(), algorithm
    )
    etag = await call.run(call.store.commit_part, call.bucket, call.key, upload_id, number, blob)
    body = elements(ETag=f'"{etag}"', LastModified=iso(found.last_modified))
    body += checksum_elements(blob.checksum, with_type=False)
    return xml_response("CopyPartResult", body)


async def complete_upload(call: S3Call) -> Response:
    upload_id = call.query["uploadId"]
    # Here x-amz-checksum-* headers declare the object's checksum, not the document's.
    document_headers = {
        name: value
        for name, value in call.headers.items()
        if not name.startswith("x-amz-checksum-")
    }
    plan = plan_payload(document_headers, call.auth)
    body = await receive_document(call.request.stream(), plan, call.auth, MAX_REQUEST_DOCUMENT)
    root = parse(body)
    parts: list[tuple[int, str]] = []
    part_checksums: dict[int, str] = {}
    for part in root.findall("Part"):
        number, etag = text_of(part, "PartNumber"), text_of(part, "ETag")
        if not number or etag is None:
            raise S3Error("MalformedXML", "every Part needs a PartNumber and an ETag")
        try:
            parts.append((int(number), etag))
        except ValueError as error:
            raise S3Error("MalformedXML", "PartNumber must be an integer") from error
        for algorithm in checksums.ALGORITHMS:
            claimed = text_of(part, "Checksum" + algorithm.upper())
            if claimed:
                part_checksums[int(number)] = claimed.strip()
    expected = next(
        (
            call.headers[f"x-amz-checksum-{algorithm}"].strip()
            for algorithm in checksums.ALGORITHMS
            if f"x-amz-checksum-{algorithm}" in call.headers
        ),
        None,
    )
    condition = await write_condition(call)
    found = await call.run(
        call.store.complete_upload,
        call.bucket,
        call.key,
        upload_id,
        parts,
        condition,
        part_checksums=part_checksums,
        expected_checksum=expected,
    )
    location = f"{call.request.base_url}{call.bucket}/{call.key}"
    result = elements(Location=location, Bucket=call.bucket, Key=call.key, ETag=f'"{found.etag}"')
    result += checksum_elements(found.checksum)
    response = xml_response("CompleteMultipartUploadResult", result)
    response.headers.update(version_headers(found))
    return response


async def abort_upload(call: S3Call) -> Response:
    await call.run(call.store.abort_upload, call.bucket, call.key, call.query["uploadId"])
    return Response(status_code=204)


def _limit(call: S3Call, name: str) -> int:
    try:
        value = int(call.query.get(name, str(MAX_LISTED)))
    except ValueError as error:
        raise S3Error("InvalidArgument", f"{name} must be an integer") from error
    if value < 0:
        raise S3Error("InvalidArgument", f"{name} must not be negative")
    return min(value, MAX_LISTED)


async def list_parts(call: S3Call) -> Response:
    upload_id = call.query["uploadId"]
    upload = await call.run(call.store.get_upload, call.bucket, call.key, upload_id)
    limit = _limit(call, "max-parts")
    try:
        marker = int(call.query.get("part-number-marker") or 0)
    except ValueError as error:
        raise S3Error("InvalidArgument", "part-number-marker must be an integer") from error
    parts = await call.run(call.store.list_parts, upload_id, marker, limit + 1)
    truncated = len(parts) > limit
    parts = parts[:limit]
    head = elements(Bucket=call.bucket, Key=call.key, UploadId=upload_id)
    head += owner(call.owner, "Initiator") + owner(call.owner)
    head += elements(
        StorageClass="STANDARD",
        PartNumberMarker=marker,
        NextPartNumberMarker=parts[-1].part_number if parts else marker,
        MaxParts=limit,
        IsTruncated=truncated,
    )
    if upload.checksum is not None:
        head += elements(
            ChecksumAlgorithm=upload.checksum.algorithm.upper(), ChecksumType=upload.checksum.type
        )
    entries = "".join(
        "<Part>"
        + elements(
            PartNumber=part.part_number,
            LastModified=iso(part.last_modified),
            ETag=f'"{part.etag}"',
            Size=part.size,
        )
        + checksum_elements(part.checksum, with_type=False)
        + "</Part>"
        for part in parts
    )
    return xml_response("ListPartsResult", head + entries)


async def list_uploads(call: S3Call) -> Response:
    if not await call.run(call.store.bucket_exists, call.bucket):
        raise S3Error("NoSuchBucket", f"bucket {call.bucket!r} does not exist")
    limit = _limit(call, "max-uploads")
    key_marker = call.query.get("key-marker", "")
    upload_marker = call.query.get("upload-id-marker", "")
    prefix = call.query.get("prefix", "")
    uploads = await call.run(
        call.store.list_uploads,
        call.bucket,
        prefix=prefix,
        key_marker=key_marker,
        upload_id_marker=upload_marker,
        limit=limit + 1,
    )
    truncated = len(uploads) > limit
    uploads = uploads[:limit]
    head = elements(
        Bucket=call.bucket,
        KeyMarker=key_marker,
        UploadIdMarker=upload_marker,
        NextKeyMarker=uploads[-1].key if truncated else None,
        NextUploadIdMarker=uploads[-1].upload_id if truncated else None,
        Prefix=prefix,
        MaxUploads=limit,
        IsTruncated=truncated,
    )
    entries = "".join(
        "<Upload>"
        + elements(Key=upload.key, UploadId=upload.upload_id)
        + owner(call.owner, "Initiator")
        + owner(call.owner)
        + elements(StorageClass="STANDARD", Initiated=iso(upload.initiated_at))
        + "</Upload>"
        for upload in uploads
    )
    return xml_response("ListMultipartUploadsResult", head + entries)
