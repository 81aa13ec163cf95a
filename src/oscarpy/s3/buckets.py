"""Service and bucket operations: ListBuckets, Create/Head/DeleteBucket, GetBucketLocation,
GetBucketVersioning, ListObjects (v1 and v2), ListObjectVersions and
DeleteObjects."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import quote

from starlette.responses import Response

from oscarpy.auth.buckets import Action, allows
from oscarpy.s3.access import table_of
from oscarpy.s3.call import S3Call
from oscarpy.s3.documents import (
    MAX_REQUEST_DOCUMENT,
    document,
    elements,
    iso,
    owner,
    parse,
    text_of,
)
from oscarpy.s3.errors import S3Error, not_implemented
from oscarpy.s3.listing import MAX_KEYS, Listing, list_entries
from oscarpy.s3.payload import plan_payload, receive_document
from oscarpy.storage.store import VERSIONING_STATES, BucketInfo, ObjectDetails, VersionEntry

MAX_DELETE_KEYS = 1000
MAX_BUCKETS = 10_000


def xml_response(root: str, body: str, status: int = 200) -> Response:
    return Response(document(root, body), status_code=status, media_type="application/xml")


async def list_buckets(call: S3Call) -> Response:
    """All buckets, or with `max-buckets` a page of them and a token for the next."""
    prefix = call.query.get("prefix", "")
    token = call.query.get("continuation-token")
    after = _untoken(token) if token else ""
    paged = "max-buckets" in call.query
    limit = MAX_BUCKETS
    if paged:
        try:
            limit = int(call.query["max-buckets"])
        except ValueError as error:
            raise S3Error("InvalidArgument", "max-buckets must be an integer") from error
        if not 1 <= limit <= MAX_BUCKETS:
            raise S3Error("InvalidArgument", f"max-buckets must be from 1 to {MAX_BUCKETS}")
    buckets = await call.run(
        visible_buckets, call, prefix=prefix, after=after, limit=limit + 1 if paged else None
    )
    following = None
    if paged and len(buckets) > limit:
        buckets = buckets[:limit]
        following = _token(buckets[-1].name)
    entries = "".join(
        "<Bucket>"
        + elements(Name=bucket.name, CreationDate=iso(bucket.created_at), BucketRegion=call.region)
        + "</Bucket>"
        for bucket in buckets
    )
    tail = elements(ContinuationToken=following, Prefix=prefix or None)
    return xml_response(
        "ListAllMyBucketsResult", f"{owner(call.owner)}<Buckets>{entries}</Buckets>{tail}"
    )


def visible_buckets(
    call: S3Call, *, prefix: str, after: str, limit: int | None
) -> list[BucketInfo]:
    """The buckets the caller may read, by name, at most `limit` (blocking: run in a thread)."""
    principal = call.principal
    if principal is not None and principal.admin:
        return call.store.bucket_details(prefix=prefix, after=after, limit=limit)
    table = table_of(call)
    found: list[BucketInfo] = []
    while limit is None or len(found) < limit:
        page = call.store.bucket_details(prefix=prefix, after=after, limit=1000)
        if not page:
            break
        access = table.get_many(bucket.name for bucket in page)
        found += [b for b in page if allows(access[b.name], principal, Action.READ)]
        after = page[-1].name
    return found if limit is None else found[:limit]


async def create_bucket(call: S3Call) -> Response:
    await call.body(64 * 1024)  # an optional CreateBucketConfiguration; the region is ours
    assert call.principal is not None  # `authorize` refuses anonymous creation
    user_id = call.principal.user_id
    if not await call.run(call.store.create_bucket, call.bucket):
        if (await call.run(table_of(call).get, call.bucket)).owner != user_id:
            raise S3Error(
                "BucketAlreadyExists",
                "The requested bucket name is not available. The bucket namespace is shared "
                "by all users of the system. Please select a different name and try again.",
                BucketName=call.bucket,
            )
        raise S3Error(
            "BucketAlreadyOwnedByYou",
            "Your previous request to create the named bucket succeeded and you already own it.",
            BucketName=call.bucket,
        )
    await call.run(table_of(call).claim, call.bucket, user_id)
    return Response(status_code=200, headers={"Location": f"/{call.bucket}"})


async def head_bucket(call: S3Call) -> Response:
    if not await call.run(call.store.bucket_exists, call.bucket):
        raise S3Error("NoSuchBucket", f"bucket {call.bucket!r} does not exist")
    return Response(status_code=200, headers={"x-amz-bucket-region": call.region})


async def delete_bucket(call: S3Call) -> Response:
    await call.run(call.store.delete_bucket, call.bucket)
    await call.run(table_of(call).forget, call.bucket)
    return Response(status_code=204)


async def _require_bucket(call: S3Call) -> None:
    if not await call.run(call.store.bucket_exists, call.bucket):
        raise S3Error("NoSuchBucket", f"bucket {call.bucket!r} does not exist")


async def get_location(call: S3Call) -> Response:
    await _require_bucket(call)
    region = "" if call.region == "us-east-1" else call.region
    return xml_response("LocationConstraint", region)


async def get_versioning(call: S3Call) -> Response:
    status = await call.run(call.store.versioning, call.bucket)
    return xml_response("VersioningConfiguration", elements(Status=status))


async def put_versioning(call: S3Call) -> Response:
    plan = plan_payload(call.headers, call.auth)
    body = await receive_document(call.request.stream(), plan, call.auth, MAX_REQUEST_DOCUMENT)
    status = (text_of(parse(body), "Status") or "").strip()
    if status not in VERSIONING_STATES:
        raise S3Error("MalformedXML", "Status must be Enabled or Suspended")
    await call.run(call.store.set_versioning, call.bucket, status)
    return Response(status_code=200)


async def get_object_lock(call: S3Call) -> Response:
    """No bucket has object lock: S3's answer for such a bucket."""
    await _require_bucket(call)
    raise S3Error(
        "ObjectLockConfigurationNotFoundError",
        "Object Lock configuration does not exist for this bucket",
    )


async def put_object_lock(call: S3Call) -> Response:
    """Object lock needs versioning, which no bucket has: S3's answer for such a bucket."""
    await call.body(MAX_REQUEST_DOCUMENT)
    await _require_bucket(call)
    raise S3Error(
        "InvalidBucketState",
        "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration",
    )


async def object_lock_setting(call: S3Call) -> Response:
    """Get/PutObjectRetention and Get/PutObjectLegalHold: S3's answer for a bucket without
    object lock (every bucket here)."""
    await call.body(MAX_REQUEST_DOCUMENT)
    await _require_bucket(call)
    raise S3Error("InvalidRequest", "Bucket is missing Object Lock Configuration")


def _max_keys(call: S3Call, name: str = "max-keys") -> int:
    value = call.query.get(name, str(MAX_KEYS))
    try:
        number = int(value)
    except ValueError as error:
        raise S3Error("InvalidArgument", f"{name} must be an integer") from error
    if number < 0:
        raise S3Error("InvalidArgument", f"{name} must not be negative")
    return min(number, MAX_KEYS)


def _encoder(call: S3Call) -> tuple[str | None, object]:
    encoding = call.query.get("encoding-type")
    if encoding is None:
        return None, lambda value: value
    if encoding != "url":
        raise S3Error("InvalidArgument", "encoding-type must be url")
    return "url", lambda value: quote(value, safe="/")


async def _listing(call: S3Call, after: str, max_keys: int) -> Listing:
    await _require_bucket(call)
    return await call.run(
        list_entries,
        call.store,
        call.bucket,
        call.query.get("prefix", ""),
        call.query.get("delimiter", ""),
        after,
        max_keys,
    )


def _entry(found: ObjectDetails, encode: object, call: S3Call, with_owner: bool) -> str:
    assert callable(encode)
    body = elements(
        Key=encode(found.key),
        LastModified=iso(found.last_modified),
        ETag=f'"{found.etag}"',
        Size=found.size,
        StorageClass="STANDARD",
    )
    if found.checksum is not None:
        body += elements(
            ChecksumAlgorithm=found.checksum.algorithm.upper(), ChecksumType=found.checksum.type
        )
    return f"<Contents>{body}{owner(call.owner) if with_owner else ''}</Contents>"


def _prefixes(listing: Listing, encode: object) -> str:
    assert callable(encode)
    return "".join(
        f"<CommonPrefixes>{elements(Prefix=encode(prefix))}</CommonPrefixes>"
        for prefix in listing.prefixes
    )


async def list_objects(call: S3Call) -> Response:
    encoding, encode = _encoder(call)
    assert callable(encode)
    max_keys = _max_keys(call)
    marker = call.query.get("marker", "")
    listing = await _listing(call, marker, max_keys)
    delimiter = call.query.get("delimiter", "")
    head = elements(
        Name=call.bucket,
        # S3 echoes ListObjects' (v1) Prefix as sent even with encoding-type=url, and
        # clients decode only the other elements.
        Prefix=call.query.get("prefix", ""),
        Marker=encode(marker),
        MaxKeys=max_keys,
        Delimiter=encode(delimiter) if delimiter else None,
        IsTruncated=listing.truncated,
        NextMarker=encode(listing.next_marker) if listing.truncated and delimiter else None,
        EncodingType=encoding,
    )
    contents = "".join(_entry(found, encode, call, True) for found in listing.contents)
    return xml_response("ListBucketResult", head + contents + _prefixes(listing, encode))


def _token(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode()


def _untoken(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError) as error:
        raise S3Error("InvalidArgument", "the continuation token is not valid") from error


async def list_objects_v2(call: S3Call) -> Response:
    encoding, encode = _encoder(call)
    assert callable(encode)
    max_keys = _max_keys(call)
    token = call.query.get("continuation-token")
    start_after = call.query.get("start-after", "")
    after = _untoken(token) if token is not None else start_after
    listing = await _listing(call, after, max_keys)
    delimiter = call.query.get("delimiter", "")
    head = elements(
        Name=call.bucket,
        Prefix=encode(call.query.get("prefix", "")),
        KeyCount=len(listing.contents) + len(listing.prefixes),
        MaxKeys=max_keys,
        Delimiter=encode(delimiter) if delimiter else None,
        IsTruncated=listing.truncated,
        ContinuationToken=token,
        NextContinuationToken=_token(listing.next_marker) if listing.truncated else None,
        StartAfter=encode(start_after) if start_after else None,
        EncodingType=encoding,
    )
    with_owner = call.query.get("fetch-owner") == "true"
    contents = "".join(_entry(found, encode, call, with_owner) for found in listing.contents)
    return xml_response("ListBucketResult", head + contents + _prefixes(listing, encode))


async def list_versions(call: S3Call) -> Response:
    """ListObjectVersions; of a bucket that never had versioning, every object is its only
    version, `null`."""
    if await call.run(call.store.versioning, call.bucket) is not None:
        return await _list_versioned(call)
    encoding, encode = _encoder(call)
    assert callable(encode)
    max_keys = _max_keys(call)
    key_marker = call.query.get("key-marker", "")
    version_marker = call.query.get("version-id-marker", "")
    # The only version of a key is "null", so resuming at (key, null) means after the key.
    listing = await _listing(call, key_marker, max_keys)
    delimiter = call.query.get("delimiter", "")
    head = elements(
        Name=call.bucket,
        Prefix=encode(call.query.get("prefix", "")),
        KeyMarker=encode(key_marker),
        VersionIdMarker=version_marker,
        MaxKeys=max_keys,
        Delimiter=encode(delimiter) if delimiter else None,
        IsTruncated=listing.truncated,
        NextKeyMarker=encode(listing.next_marker) if listing.truncated else None,
        NextVersionIdMarker="null" if listing.truncated else None,
        EncodingType=encoding,
    )
    versions = "".join(
        "<Version>"
        + elements(
            Key=encode(found.key),
            VersionId="null",
            IsLatest=True,
            LastModified=iso(found.last_modified),
            ETag=f'"{found.etag}"',
            Size=found.size,
            StorageClass="STANDARD",
        )
        + owner(call.owner)
        + "</Version>"
        for found in listing.contents
    )
    return xml_response("ListVersionsResult", head + versions + _prefixes(listing, encode))


async def delete_objects(call: S3Call) -> Response:
    # Read through the payload checks: S3 requires Content-MD5 or a checksum on this call.
    plan = plan_payload(call.headers, call.auth)
    body = await receive_document(call.request.stream(), plan, call.auth, MAX_REQUEST_DOCUMENT)
    root = parse(body)
    quiet = (text_of(root, "Quiet") or "").strip().lower() == "true"
    requested = root.findall("Object")
    if len(requested) > MAX_DELETE_KEYS:
        raise S3Error("MalformedXML", "at most 1000 keys can be deleted in one request")
    keys: list[str] = []
    versions: list[tuple[str, str]] = []
    for item in requested:
        key = text_of(item, "Key")
        version = text_of(item, "VersionId")
        if not key:
            raise S3Error("MalformedXML", "every Object needs a Key")
        if version:
            versions.append((key, version))
        else:
            keys.append(key)
    await call.run(call.store.delete_objects, call.bucket, keys)
    deleted = [elements(Key=key) for key in keys]
    for key, version in versions:
        removed = await call.run(
            call.store.delete_version, call.bucket, key, None if version == "null" else version
        )
        marker = removed is not None and removed.delete_marker
        deleted.append(elements(Key=key, VersionId=version, DeleteMarker=True if marker else None))
    result = "" if quiet else "".join(f"<Deleted>{entry}</Deleted>" for entry in deleted)
    return xml_response("DeleteResult", result)


async def _list_versioned(call: S3Call) -> Response:
    encoding, encode = _encoder(call)
    assert callable(encode)
    if call.query.get("delimiter"):
        raise not_implemented("ListObjectVersions with a delimiter in a versioned bucket")
    max_keys = _max_keys(call)
    key_marker = call.query.get("key-marker", "")
    version_marker = call.query.get("version-id-marker")
    marker = (
        None if version_marker is None else ("" if version_marker == "null" else version_marker)
    )
    entries = await call.run(
        call.store.list_versions,
        call.bucket,
        prefix=call.query.get("prefix", ""),
        key_marker=key_marker,
        version_marker=marker if key_marker else None,
        limit=max_keys + 1,
    )
    truncated = len(entries) > max_keys
    entries = entries[:max_keys]
    last = entries[-1].details if entries else None
    head = elements(
        Name=call.bucket,
        Prefix=encode(call.query.get("prefix", "")),
        KeyMarker=encode(key_marker),
        VersionIdMarker=version_marker or "",
        MaxKeys=max_keys,
        IsTruncated=truncated,
        NextKeyMarker=encode(last.key) if truncated and last else None,
        NextVersionIdMarker=(last.version_id or "null") if truncated and last else None,
        EncodingType=encoding,
    )
    return xml_response(
        "ListVersionsResult",
        head + "".join(_version_entry(entry, encode, call) for entry in entries),
    )


def _version_entry(entry: VersionEntry, encode: object, call: S3Call) -> str:
    assert callable(encode)
    found = entry.details
    common = elements(
        Key=encode(found.key),
        VersionId=found.version_id or "null",
        IsLatest=entry.is_latest,
        LastModified=iso(found.last_modified),
    )
    if found.delete_marker:
        return f"<DeleteMarker>{common}{owner(call.owner)}</DeleteMarker>"
    body = common + elements(ETag=f'"{found.etag}"', Size=found.size, StorageClass="STANDARD")
    return f"<Version>{body}{owner(call.owner)}</Version>"
