"""A WebDAV server (dCache, Nextcloud, Apache `mod_dav`...) as a storage provider, `webdav.<id>`.

A path's first segment (its "bucket") is the top folder on the server and the key is the rest,
so `webdav.dcache` with path `data/in` reads `https://<hostname>/data/in/<file>`, as OSCAR's
supervisor does. `hostname` has no scheme in OSCAR (always HTTPS); a scheme given here is kept,
so that a server on plain HTTP (a test, a private network) can be used too.

A handful of verbs is all it needs (GET, PUT, MKCOL, PROPFIND; HEAD and DELETE for the CLI's
file commands), so it speaks them through httpx. The only module that sees httpx errors; they
leave it as `StorageError` / `ObjectNotFound`, which staging treats as infrastructure failures
(retried).
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit
from xml.etree import ElementTree

import httpx

from oscarpy.log import register_secret
from oscarpy.storage.providers.base import ObjectInfo, ObjectNotFound, StorageError

_DAV = "{DAV:}"
_PROPFIND = (
    b'<?xml version="1.0" encoding="utf-8"?><propfind xmlns="DAV:"><prop>'
    b"<resourcetype/><getcontentlength/><getetag/><getlastmodified/></prop></propfind>"
)
_CHUNK = 1024 * 1024
#: A PROPFIND answer larger than this is refused (a folder of ~100 000 files fits).
_MAX_LISTING = 64 * 1024 * 1024


def _etag(value: str | None) -> str:
    text = (value or "").strip()
    return text.removeprefix("W/").strip('"')


def _when(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


class WebdavProvider:
    """One WebDAV server with its login; `hostname` is `host[:port][/base]` or a full URL."""

    def __init__(
        self, *, hostname: str, login: str, password: str, name: str = "webdav", verify: bool = True
    ) -> None:
        if not hostname.strip():
            raise StorageError(f"storage provider {name} has no hostname")
        register_secret(password)
        self.name = name
        base = hostname.strip().rstrip("/")
        self.base_url = base if "://" in base else f"https://{base}"
        self._base_path = urlsplit(self.base_url).path.rstrip("/")
        self._client = httpx.Client(
            auth=httpx.BasicAuth(login, password) if login else None,
            verify=verify,
            # dCache answers reads with a redirect to the pool that holds the file.
            follow_redirects=True,
            timeout=httpx.Timeout(60.0, connect=10.0),
        )

    def _url(self, bucket: str, key: str = "", folder: bool = False) -> str:
        segments = [bucket, *[segment for segment in key.split("/") if segment]]
        path = "/".join(quote(segment, safe="") for segment in segments)
        return f"{self.base_url}/{path}{'/' if folder else ''}"

    def _where(self, bucket: str, key: str = "") -> str:
        return f"{self.name} {bucket}/{key}" if key else f"{self.name} {bucket}"

    def _failed(self, response: httpx.Response, bucket: str, key: str = "") -> StorageError:
        where = self._where(bucket, key)
        if response.status_code == 404:
            return ObjectNotFound(f"{where} not found")
        if response.status_code in (401, 403):
            return StorageError(f"{where}: access denied ({response.status_code}); check login")
        return StorageError(f"{where}: {response.request.method} answered {response.status_code}")

    def _request(
        self,
        method: str,
        url: str,
        bucket: str,
        key: str = "",
        content: bytes | Iterator[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        try:
            return self._client.request(method, url, content=content, headers=headers)
        except httpx.HTTPError as error:
            raise StorageError(f"{self._where(bucket, key)}: {error}") from error

    def download(self, bucket: str, key: str, destination: Path) -> ObjectInfo:
        size = 0
        try:
            with self._client.stream("GET", self._url(bucket, key)) as response:
                if response.status_code != 200:
                    raise self._failed(response, bucket, key)
                with open(destination, "xb") as handle:
                    for chunk in response.iter_bytes(_CHUNK):
                        handle.write(chunk)
                        size += len(chunk)
                headers = response.headers
        except httpx.HTTPError as error:
            destination.unlink(missing_ok=True)
            raise StorageError(f"{self._where(bucket, key)}: {error}") from error
        return ObjectInfo(
            bucket, key, size, _etag(headers.get("etag")), _when(headers.get("last-modified"))
        )

    def upload(
        self, bucket: str, key: str, source: Path, content_type: str | None = None
    ) -> ObjectInfo:
        response = self._put(bucket, key, source, content_type)
        if response.status_code == 409:  # a parent collection is missing: make them, try again
            self._make_folders(bucket, key)
            response = self._put(bucket, key, source, content_type)
        if response.status_code not in (200, 201, 204):
            raise self._failed(response, bucket, key)
        etag = _etag(response.headers.get("etag"))
        if not etag:
            head = self._request("HEAD", self._url(bucket, key), bucket, key)
            etag = _etag(head.headers.get("etag")) if head.status_code == 200 else ""
        return ObjectInfo(bucket, key, source.stat().st_size, etag)

    def _put(self, bucket: str, key: str, source: Path, content_type: str | None) -> httpx.Response:
        headers = {"Content-Type": content_type} if content_type else {}
        headers["Content-Length"] = str(source.stat().st_size)
        with open(source, "rb") as handle:
            chunks = iter(lambda: handle.read(_CHUNK), b"")
            return self._request(
                "PUT", self._url(bucket, key), bucket, key, content=chunks, headers=headers
            )

    def _make_folders(self, bucket: str, key: str) -> None:
        self.ensure_bucket(bucket)
        folders = key.split("/")[:-1]
        for depth in range(1, len(folders) + 1):
            self._make_folder(bucket, "/".join(folders[:depth]))

    def _make_folder(self, bucket: str, key: str = "") -> None:
        url = self._url(bucket, key, folder=True)
        response = self._request("MKCOL", url, bucket, key)
        # 405: it exists already (RFC 4918 9.3.1); some servers say 301 for the folder's URL.
        if response.status_code not in (200, 201, 204, 301, 405):
            raise self._failed(response, bucket, key)

    def list_objects(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        folder, _, _ = prefix.rpartition("/")
        found = sorted(self._walk(bucket, folder), key=lambda info: info.key)
        yield from (info for info in found if info.key.startswith(prefix))

    def _walk(self, bucket: str, folder: str) -> Iterator[ObjectInfo]:
        """Every file below `folder`, one PROPFIND of depth 1 per folder (servers often refuse
        `Depth: infinity`)."""
        pending = [folder]
        while pending:
            current = pending.pop()
            response = self._request(
                "PROPFIND",
                self._url(bucket, current, folder=True),
                bucket,
                current,
                content=_PROPFIND,
                headers={"Depth": "1", "Content-Type": "application/xml"},
            )
            if response.status_code == 404:
                continue  # no such folder: nothing under it
            if response.status_code != 207:
                raise self._failed(response, bucket, current)
            if len(response.content) > _MAX_LISTING:
                raise StorageError(f"{self._where(bucket, current)}: the listing is too large")
            for key, is_folder, info in self._entries(response.content, bucket):
                if is_folder:
                    if key.rstrip("/") != current.rstrip("/"):
                        pending.append(key.rstrip("/"))
                elif info is not None:
                    yield info

    def _entries(
        self, document: bytes, bucket: str
    ) -> Iterator[tuple[str, bool, ObjectInfo | None]]:
        if b"<!DOCTYPE" in document or b"<!ENTITY" in document:
            raise StorageError(f"{self._where(bucket)}: the listing holds a DTD; refused")
        try:
            root = ElementTree.fromstring(document)
        except ElementTree.ParseError as error:
            raise StorageError(f"{self._where(bucket)}: unreadable listing: {error}") from error
        bucket_path = f"{self._base_path}/{bucket}/"
        for response in root.iter(f"{_DAV}response"):
            href = unquote(urlsplit(response.findtext(f"{_DAV}href", "")).path)
            if not href.startswith(bucket_path):
                continue  # the bucket's own folder, or something outside it
            key = href[len(bucket_path) :]
            properties = response.find(f"{_DAV}propstat/{_DAV}prop")
            if properties is None:
                continue
            kind = properties.find(f"{_DAV}resourcetype")
            if kind is not None and kind.find(f"{_DAV}collection") is not None:
                yield key, True, None
                continue
            length = properties.findtext(f"{_DAV}getcontentlength") or "0"
            yield (
                key,
                False,
                ObjectInfo(
                    bucket,
                    key,
                    int(length) if length.isdigit() else 0,
                    _etag(properties.findtext(f"{_DAV}getetag")),
                    _when(properties.findtext(f"{_DAV}getlastmodified")),
                ),
            )

    def ensure_bucket(self, bucket: str) -> None:
        self._make_folder(bucket)

    def exists(self, bucket: str, key: str) -> bool:
        response = self._request("HEAD", self._url(bucket, key), bucket, key)
        if response.status_code == 404:
            return False
        if response.status_code != 200:
            raise self._failed(response, bucket, key)
        return True

    def delete(self, bucket: str, key: str) -> None:
        response = self._request("DELETE", self._url(bucket, key), bucket, key)
        if response.status_code not in (200, 202, 204):
            raise self._failed(response, bucket, key)

    def close(self) -> None:
        """Close the kept connections (the engine keeps a provider for its whole life)."""
        self._client.close()
