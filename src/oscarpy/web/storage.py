"""Storage pages: the embedded store's buckets and folders; upload, download, delete, new folder.

Uploads stream the request body straight into the store's blob writer (no temporary copy), one
file per request, so that the browser reports each file's progress. A file uploaded into a
service's input folder is committed with its object event, and the job engine takes it from
there, exactly as for an upload through the S3 API.
"""

from __future__ import annotations

import json
import mimetypes
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.datastructures import UploadFile

from oscarpy.auth.buckets import Action, BucketAccessTable, allows
from oscarpy.auth.principal import Principal
from oscarpy.auth.sessions import Session
from oscarpy.services.model import Service
from oscarpy.storage.blobs import BlobWriter
from oscarpy.storage.errors import BucketNotFound
from oscarpy.storage.providers.base import ObjectInfo
from oscarpy.storage.store import ObjectDetails, ObjectStore
from oscarpy.web.dashboard import (
    PREFIX,
    Checked,
    DashboardError,
    DashboardRoute,
    SignedIn,
    redirect,
    registry,
    render,
    store,
)

router = APIRouter(prefix=f"{PREFIX}/storage", route_class=DashboardRoute, include_in_schema=False)

MAX_LISTED = 5000
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Use:
    """A service reading from or writing to a folder."""

    service: str
    role: str
    folder: str


def _uses(services: list[Service], bucket: str) -> list[Use]:
    uses = []
    for service in services:
        for role, paths in (("input", service.input), ("output", service.output)):
            for path in paths:
                if path.bucket == bucket and service.uses_embedded_store(path):
                    uses.append(Use(service.name, role, path.folder))
    return uses


def _browse_url(bucket: str, prefix: str = "") -> str:
    url = f"{PREFIX}/storage/{bucket}"
    return f"{url}?prefix={quote(prefix)}" if prefix else url


def principal_of(session: Session) -> Principal:
    """Who a dashboard session is, as bucket access checks see them."""
    return session.principal


def _require_bucket(
    request: Request, bucket: str, session: Session, action: Action = Action.READ
) -> None:
    """The bucket exists and the session's user may do `action` on it (the S3 port's rule)."""
    if not store(request).bucket_exists(bucket):
        raise BucketNotFound(f"There is no bucket named {bucket}.")
    if not allows(_access(request).get(bucket), principal_of(session), action):
        raise DashboardError(f"You may not {action.value} bucket {bucket}.", 403)


def _access(request: Request) -> BucketAccessTable:
    return BucketAccessTable(store(request).database)


def _clean_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


@router.get("")
async def buckets_page(request: Request, session: SignedIn) -> Response:
    def gather() -> dict[str, Any]:
        services = registry(request).list()
        details = store(request).bucket_details()
        access = _access(request).get_many(info.name for info in details)
        who = principal_of(session)
        return {
            "buckets": [
                {"info": info, "uses": _uses(services, info.name)}
                for info in details
                if allows(access[info.name], who, Action.READ)
            ]
        }

    return render(request, "buckets.html", await run_in_threadpool(gather))


@router.post("")
async def create_bucket(request: Request, session: Checked) -> Response:
    name = str((await request.form()).get("name") or "").strip()
    created = await run_in_threadpool(store(request).create_bucket, name)
    if not created:
        raise DashboardError(f"A bucket named {name} exists already.", 409)
    await run_in_threadpool(_access(request).claim, name, principal_of(session).user_id)
    return redirect(request, _browse_url(name), f"Bucket {name} created.")


@router.get("/{bucket}")
async def bucket_page(
    request: Request, bucket: str, session: SignedIn, prefix: str = ""
) -> Response:
    prefix = _clean_prefix(prefix)

    def gather() -> dict[str, Any]:
        _require_bucket(request, bucket, session)
        folders: set[str] = set()
        files: list[ObjectInfo] = []
        more = False
        for count, found in enumerate(store(request).list_objects(bucket, prefix)):
            if count >= MAX_LISTED:
                more = True
                break
            rest = found.key[len(prefix) :]
            if not rest:
                continue  # the folder's own marker
            head, slash, _tail = rest.partition("/")
            if slash:
                folders.add(head)
            else:
                files.append(found)
        uses = _uses(registry(request).list(), bucket)
        here = prefix.rstrip("/")
        crumbs = []
        walked = ""
        for part in [part for part in here.split("/") if part]:
            walked += part + "/"
            crumbs.append({"name": part, "url": _browse_url(bucket, walked)})
        return {
            "bucket": bucket,
            "folder": prefix,
            "crumbs": crumbs,
            "folders": [
                {"name": name, "url": _browse_url(bucket, f"{prefix}{name}/")}
                for name in sorted(folders)
            ],
            "files": files,
            "more": more,
            "max_listed": MAX_LISTED,
            "here_uses": [use for use in uses if use.folder == here],
            "uses": uses,
        }

    return render(request, "bucket.html", await run_in_threadpool(gather))


@router.get("/{bucket}/delete")
async def delete_bucket_page(request: Request, bucket: str, session: SignedIn) -> Response:
    await run_in_threadpool(_require_bucket, request, bucket, session, Action.MANAGE)
    uses = await run_in_threadpool(lambda: _uses(registry(request).list(), bucket))
    return render(request, "bucket_delete.html", {"bucket": bucket, "uses": uses})


@router.post("/{bucket}/delete")
async def delete_bucket(request: Request, bucket: str, session: Checked) -> Response:
    force = (await request.form()).get("force") == "on"
    await run_in_threadpool(_require_bucket, request, bucket, session, Action.MANAGE)
    await run_in_threadpool(store(request).delete_bucket, bucket, force)
    await run_in_threadpool(_access(request).forget, bucket)
    return redirect(request, f"{PREFIX}/storage", f"Bucket {bucket} deleted.")


@router.post("/{bucket}/folders")
async def create_folder(request: Request, bucket: str, session: Checked) -> Response:
    form = await request.form()
    prefix = _clean_prefix(str(form.get("prefix") or ""))
    name = str(form.get("name") or "").strip().strip("/")
    if not name or any(part in ("", ".", "..") for part in name.split("/")):
        raise DashboardError("Give the new folder a name (no empty, '.' or '..' parts).")
    await run_in_threadpool(_require_bucket, request, bucket, session, Action.WRITE)
    await run_in_threadpool(store(request).ensure_folder, bucket, prefix + name)
    return redirect(request, _browse_url(bucket, prefix + name + "/"), f"Folder {name} created.")


@router.put("/{bucket}/objects")
async def upload_one(request: Request, bucket: str, key: str, session: Checked) -> Response:
    """One file as the raw request body (the dashboard's script sends each file so)."""
    await run_in_threadpool(_require_bucket, request, bucket, session, Action.WRITE)
    objects = store(request)
    writer = objects.writer()
    try:
        async for chunk in request.stream():
            if chunk:
                await run_in_threadpool(writer.write, chunk)
    except BaseException:
        writer.abort()
        raise
    content_type = request.headers.get("content-type") or _guess(key)
    info = await run_in_threadpool(_commit, objects, bucket, key, writer, content_type)
    return Response(
        json.dumps({"key": info.key, "size": info.size}),
        media_type="application/json",
        status_code=201,
    )


@router.post("/{bucket}/upload")
async def upload_form(request: Request, bucket: str, session: Checked) -> Response:
    """Files from the picker without script: a multipart form, several files at once."""
    form = await request.form()
    prefix = _clean_prefix(str(form.get("prefix") or ""))
    uploads = [item for item in form.getlist("files") if isinstance(item, UploadFile)]
    uploads = [item for item in uploads if item.filename]
    if not uploads:
        raise DashboardError("Choose one or more files to upload.")
    await run_in_threadpool(_require_bucket, request, bucket, session, Action.WRITE)
    objects = store(request)
    for upload in uploads:
        name = (upload.filename or "").replace("\\", "/").rpartition("/")[2]
        writer = objects.writer()
        try:
            await run_in_threadpool(writer.copy_from, upload.file)
        except BaseException:
            writer.abort()
            raise
        await run_in_threadpool(
            _commit, objects, bucket, prefix + name, writer, upload.content_type or _guess(name)
        )
    plural = "" if len(uploads) == 1 else "s"
    return redirect(request, _browse_url(bucket, prefix), f"Uploaded {len(uploads)} file{plural}.")


@router.get("/{bucket}/object")
async def download(request: Request, bucket: str, key: str, session: SignedIn) -> Response:
    await run_in_threadpool(_require_bucket, request, bucket, session)
    info, handle = await run_in_threadpool(store(request).open_object, bucket, key)

    def chunks() -> Any:
        with handle:
            while chunk := handle.read(_CHUNK):
                yield chunk

    name = key.rpartition("/")[2] or "download"
    return StreamingResponse(
        iterate_in_threadpool(chunks()),
        media_type=info.content_type or "application/octet-stream",
        headers={
            "Content-Length": str(info.size),
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


@router.post("/{bucket}/object/delete")
async def delete_object(request: Request, bucket: str, session: Checked) -> Response:
    form = await request.form()
    key = str(form.get("key") or "")
    if not key:
        raise DashboardError("Which file? The form named none.")
    await run_in_threadpool(_require_bucket, request, bucket, session, Action.WRITE)
    deleted = await run_in_threadpool(store(request).delete_object, bucket, key)
    if not deleted:
        raise DashboardError(f"There is no file {key} in bucket {bucket}.", 404)
    parent = key.rpartition("/")[0]
    return redirect(request, _browse_url(bucket, parent + "/" if parent else ""), f"Deleted {key}.")


def _commit(
    objects: ObjectStore, bucket: str, key: str, writer: BlobWriter, content_type: str
) -> ObjectDetails:
    return objects.commit_object(bucket, key, writer.finish(), content_type=content_type)


def _guess(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"
