"""`/system/buckets`: list, create, read, share and delete buckets, and presigned URLs for their
objects, with OSCAR v4's routes, status codes and JSON shapes.

Who may do what is `oscarpy.auth.buckets`'s decision, the same one the S3 port and the dashboard
take. Presigned URLs are signed with the admin's key pair after the caller's own right was
checked here: the URL opens one object for one method until it expires, nothing more.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from oscarpy.api.auth import current_principal
from oscarpy.api.errors import error_responses
from oscarpy.api.origin import require_json
from oscarpy.auth.buckets import (
    VISIBILITIES,
    Action,
    BucketAccess,
    BucketAccessTable,
    allows,
)
from oscarpy.auth.principal import Principal
from oscarpy.storage.errors import BucketNotFound, InvalidBucketName
from oscarpy.storage.store import ObjectStore

router = APIRouter(prefix="/system/buckets", tags=["buckets"], responses=error_responses(401))

Caller = Annotated[Principal, Depends(current_principal)]

#: OSCAR's page size when `limit` is not given (its JOB_LISTING_LIMIT default), and our cap.
DEFAULT_PAGE = 70
MAX_PAGE = 1000
#: OSCAR's presigned URL lifetimes: 15 minutes unless asked, 1 second to 7 days.
DEFAULT_EXPIRY = 900
MAX_EXPIRY = 7 * 24 * 3600


def _store(request: Request) -> ObjectStore:
    store: ObjectStore = request.app.state.store
    return store


def _table(request: Request) -> BucketAccessTable:
    return BucketAccessTable(_store(request).database)


def _problem(code: int, detail: str) -> HTTPException:
    return HTTPException(code, detail=detail)


def describe(access: BucketAccess) -> dict[str, Any]:
    """A bucket as OSCAR's `MinIOBucket` JSON."""
    # OSCAR tags a service's buckets `from_service`; its dashboard links them to the service.
    metadata = {"from_service": access.service} if access.service else {}
    return {
        "bucket_name": access.bucket,
        "visibility": access.visibility,
        "allowed_users": list(access.allowed_users),
        "owner": access.owner,
        "metadata": metadata,
    }


async def _json_body(request: Request) -> dict[str, Any]:
    require_json(request)
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise _problem(400, "The Bucket specification is not valid: the body is not a JSON object")
    return body


def _sharing(body: dict[str, Any]) -> tuple[str, list[str]]:
    visibility = str(body.get("visibility") or "private").strip().lower()
    if visibility not in VISIBILITIES:
        raise _problem(
            400,
            f"The Bucket specification is not valid: visibility must be one of "
            f"{', '.join(VISIBILITIES)}, not {visibility!r}",
        )
    users = body.get("allowed_users") or []
    if not isinstance(users, list) or not all(isinstance(user, str) for user in users):
        raise _problem(400, "The Bucket specification is not valid: allowed_users is a list")
    return visibility, [user.strip() for user in users if user.strip()]


def _checked(request: Request, principal: Principal, bucket: str, action: Action) -> BucketAccess:
    """The bucket's record if it exists and `principal` may do `action` (404, 403 otherwise)."""
    if not _store(request).bucket_exists(bucket):
        raise _problem(404, f"The bucket '{bucket}' does not exist")
    access = _table(request).get(bucket)
    if not allows(access, principal, action):
        raise _problem(403, f"User '{principal.user_id}' is not authorised")
    return access


@router.get("", summary="List buckets")
async def list_buckets(request: Request, principal: Caller) -> list[dict[str, Any]]:
    """The buckets the caller may see (an admin: all), with their sharing."""

    def gather() -> list[dict[str, Any]]:
        names = _store(request).list_buckets()
        access = _table(request).get_many(names)
        return [
            describe(access[name]) for name in names if allows(access[name], principal, Action.READ)
        ]

    return await run_in_threadpool(gather)


@router.post("", status_code=201, summary="Create a bucket", responses=error_responses(400))
async def create_bucket(request: Request, principal: Caller) -> Response:
    """Create `bucket_name` (optionally `bucket/folder`) owned by the caller."""
    body = await _json_body(request)
    path = str(body.get("bucket_name") or "").strip(" /")
    bucket, _, folder = path.partition("/")
    if not bucket:
        raise _problem(400, "The Bucket specification is not valid: bucket_name is required")
    visibility, users = _sharing(body)

    def create() -> None:
        store = _store(request)
        try:
            created = store.create_bucket(bucket)
        except InvalidBucketName as error:
            raise _problem(400, f"Error creating bucket with name '{bucket}': {error}") from None
        table = _table(request)
        if created:
            table.claim(bucket, principal.user_id, visibility=visibility, allowed_users=users)  # type: ignore[arg-type]
        elif not allows(table.get(bucket), principal, Action.MANAGE):
            raise _problem(
                400, f"Error creating bucket with name '{bucket}': the bucket already exists"
            )
        if folder:
            store.ensure_folder(bucket, folder)

    await run_in_threadpool(create)
    return Response(status_code=status.HTTP_201_CREATED)


@router.put("", status_code=204, summary="Change who may use a bucket")
async def update_bucket(request: Request, principal: Caller) -> Response:
    """Set `visibility` and `allowed_users` of `bucket_name` (its owner or an admin)."""
    body = await _json_body(request)
    bucket = str(body.get("bucket_name") or "").strip(" /")
    visibility, users = _sharing(body)

    def update() -> None:
        access = _checked(request, principal, bucket, Action.MANAGE)
        if access.service:
            raise _problem(403, "Forbidden action: A bucket from a service can't be modified")
        _table(request).update(bucket, visibility=visibility, allowed_users=users)

    await run_in_threadpool(update)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _untoken(page: str) -> str:
    try:
        return base64.urlsafe_b64decode(page.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _problem(400, "page is not a token this server gave") from None


@router.get("/{bucket}", summary="Read a bucket and a page of its objects")
async def get_bucket(
    request: Request,
    bucket: str,
    principal: Caller,
    prefix: str = "",
    page: str = "",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
) -> dict[str, Any]:
    """The bucket's sharing and up to `limit` objects under `prefix`, from the `page` token
    of the previous answer (`next_page`)."""
    after = _untoken(page) if page else ""

    def gather() -> dict[str, Any]:
        access = _checked(request, principal, bucket, Action.READ)
        found = _store(request).list_page(bucket, prefix=prefix, after=after, limit=limit + 1)
        truncated = len(found) > limit
        found = found[:limit]
        answer = describe(access)
        answer["metadata"]["owner"] = access.owner  # OSCAR's read keeps the owner tag
        answer["objects"] = [
            {
                "object_name": item.key,
                "size_bytes": item.size,
                "last_modified": item.last_modified.isoformat(),
            }
            for item in found
        ]
        if truncated:
            answer["next_page"] = base64.urlsafe_b64encode(found[-1].key.encode()).decode()
        answer["is_truncated"] = truncated
        answer["returned_items"] = len(found)
        return answer

    return await run_in_threadpool(gather)


@router.delete("/{bucket}", status_code=204, summary="Delete a bucket and its objects")
async def delete_bucket(request: Request, bucket: str, principal: Caller) -> Response:
    def delete() -> None:
        _checked(request, principal, bucket, Action.MANAGE)
        try:
            _store(request).delete_bucket(bucket, force=True)
        except BucketNotFound:
            raise _problem(404, f"The bucket '{bucket}' does not exist") from None
        _table(request).forget(bucket)

    await run_in_threadpool(delete)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


_presigners: dict[tuple[str, str], Any] = {}
_presigners_lock = threading.Lock()


def _presigner(request: Request) -> Any:
    """A boto3 client of our own S3 port, signing as the admin (built once: it is slow)."""
    import boto3
    from botocore.config import Config

    endpoint: str = request.app.state.s3_endpoint
    admin = request.app.state.admin
    with _presigners_lock:
        client = _presigners.get((endpoint, admin.username))
        if client is None:
            client = _presigners[(endpoint, admin.username)] = boto3.client(
                "s3",
                endpoint_url=endpoint,
                aws_access_key_id=admin.username,
                aws_secret_access_key=admin.password,
                region_name=request.app.state.settings.region,
                config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
            )
        return client


@router.post("/{bucket}/presign", summary="A presigned URL to download or upload one object")
async def presign(request: Request, bucket: str, principal: Caller) -> JSONResponse:
    """`operation` `download` (GET) or `upload` (PUT) of `object_key`, valid `expires_in`
    seconds (default 900, at most 7 days)."""
    body = await _json_body(request)
    key = str(body.get("object_key") or "").strip().strip("/")
    if not key:
        raise _problem(400, "Object key cannot be empty")
    operation = str(body.get("operation") or "").strip().lower()
    if operation not in ("upload", "download"):
        raise _problem(
            400,
            f"Unsupported operation '{body.get('operation')}'. "
            "Allowed values are 'upload' or 'download'",
        )
    expires = body.get("expires_in") or DEFAULT_EXPIRY
    if not isinstance(expires, int) or not 1 <= expires <= MAX_EXPIRY:
        raise _problem(
            400,
            f"Invalid expiration requested: {expires}. Allowed range is 1-{MAX_EXPIRY} seconds",
        )
    content_type = str(body.get("content_type") or "")
    extra = body.get("extra_headers") or {}
    if not isinstance(extra, dict):
        raise _problem(400, "extra_headers must be an object")
    action = Action.WRITE if operation == "upload" else Action.READ

    def sign() -> dict[str, Any]:
        _checked(request, principal, bucket, action)
        params: dict[str, Any] = {"Bucket": bucket, "Key": key}
        headers: dict[str, str] = {str(name).title(): str(value) for name, value in extra.items()}
        if operation == "upload" and content_type:
            params["ContentType"] = content_type
            headers["Content-Type"] = content_type
        if operation == "download" and content_type:
            params["ResponseContentType"] = content_type
        method = "put_object" if operation == "upload" else "get_object"
        url = _presigner(request).generate_presigned_url(method, Params=params, ExpiresIn=expires)
        answer: dict[str, Any] = {
            "object_key": key,
            "operation": operation,
            "method": "PUT" if operation == "upload" else "GET",
            "url": url,
            "expires_at": (datetime.now(UTC) + timedelta(seconds=expires)).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
        }
        if headers:
            answer["headers"] = headers
        return answer

    return JSONResponse(await run_in_threadpool(sign))
