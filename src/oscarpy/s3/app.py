"""The S3-compatible front-end of the embedded object store.

A plain ASGI app: each request is authenticated (SigV4), addressed (path-style
`/bucket/key` or virtual-host-style `bucket.<domain>/key`), routed by method, level (service,
bucket, object) and sub-resource to one operation, and any error is answered in the S3 XML
format with its proper status. Operations we do not implement answer 501 `NotImplemented`.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import unquote, urlsplit

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oscarpy.auth.buckets import Action
from oscarpy.auth.cors import with_cors
from oscarpy.auth.credentials import AdminCredentials
from oscarpy.auth.principal import ADMIN, Principal
from oscarpy.auth.throttle import Throttle, Throttled, client_address
from oscarpy.auth.users import Users, principal_of_user
from oscarpy.config import Settings
from oscarpy.s3 import buckets, forms, multipart, objects, sharing
from oscarpy.s3.access import authorize, authorize_blocking, is_anonymous
from oscarpy.s3.call import S3Call
from oscarpy.s3.errors import S3Error, from_store_error, not_implemented
from oscarpy.s3.payload import InlineWrites
from oscarpy.s3.sigv2 import PRESIGNED_PARAMETERS
from oscarpy.s3.sigv4 import UNSIGNED_PAYLOAD, Authorization, Credentials, Verifier
from oscarpy.storage.errors import StorageError, is_disk_full
from oscarpy.storage.store import ObjectStore

log = logging.getLogger("oscarpy.s3")

Handler = Callable[[S3Call], Awaitable[Response]]


async def _head_object(call: S3Call) -> Response:
    return await objects.get_object(call, head=True)


async def _list_bucket(call: S3Call) -> Response:
    if call.query.get("list-type") == "2":
        return await buckets.list_objects_v2(call)
    return await buckets.list_objects(call)


async def _upload_part(call: S3Call) -> Response:
    if "partNumber" not in call.query:
        raise S3Error("InvalidArgument", "UploadPart needs partNumber")
    return await multipart.upload_part(call)


#: (method, addresses an object, sub-resource) -> operation.
ROUTES: dict[tuple[str, bool, str], Handler] = {
    ("GET", False, ""): _list_bucket,
    ("PUT", False, ""): buckets.create_bucket,
    ("HEAD", False, ""): buckets.head_bucket,
    ("DELETE", False, ""): buckets.delete_bucket,
    ("GET", False, "location"): buckets.get_location,
    ("GET", False, "versioning"): buckets.get_versioning,
    ("PUT", False, "versioning"): buckets.put_versioning,
    ("GET", False, "versions"): buckets.list_versions,
    ("GET", False, "acl"): sharing.get_acl,
    ("PUT", False, "acl"): sharing.put_acl,
    ("GET", False, "policy"): sharing.get_policy,
    ("PUT", False, "policy"): sharing.put_policy,
    ("DELETE", False, "policy"): sharing.delete_policy,
    ("GET", False, "publicAccessBlock"): sharing.get_public_access_block,
    ("PUT", False, "publicAccessBlock"): sharing.put_public_access_block,
    ("DELETE", False, "publicAccessBlock"): sharing.delete_public_access_block,
    ("GET", False, "object-lock"): buckets.get_object_lock,
    ("PUT", False, "object-lock"): buckets.put_object_lock,
    ("GET", True, "retention"): buckets.object_lock_setting,
    ("PUT", True, "retention"): buckets.object_lock_setting,
    ("GET", True, "legal-hold"): buckets.object_lock_setting,
    ("PUT", True, "legal-hold"): buckets.object_lock_setting,
    ("GET", False, "uploads"): multipart.list_uploads,
    ("POST", False, "delete"): buckets.delete_objects,
    ("PUT", True, ""): objects.put_object,
    ("GET", True, ""): objects.get_object,
    ("HEAD", True, ""): _head_object,
    ("DELETE", True, ""): objects.delete_object,
    ("GET", True, "acl"): sharing.get_acl,
    ("PUT", True, "acl"): sharing.put_acl,
    ("GET", True, "attributes"): objects.get_object_attributes,
    ("POST", True, "uploads"): multipart.create_upload,
    ("PUT", True, "uploadId"): _upload_part,
    ("POST", True, "uploadId"): multipart.complete_upload,
    ("DELETE", True, "uploadId"): multipart.abort_upload,
    ("GET", True, "uploadId"): multipart.list_parts,
}
SUBRESOURCES = {subresource for _, _, subresource in ROUTES if subresource}
#: Query parameters that qualify an operation rather than select one.
PARAMETERS = {
    "prefix",
    "delimiter",
    "marker",
    "max-keys",
    "list-type",
    "continuation-token",
    "start-after",
    "encoding-type",
    "fetch-owner",
    "key-marker",
    "version-id-marker",
    "upload-id-marker",
    "max-uploads",
    "max-parts",
    "part-number-marker",
    "partNumber",
    "versionId",
    "x-id",
    "max-buckets",
    "bucket-region",
    *PRESIGNED_PARAMETERS,
}


def parse_query(raw_query: str) -> dict[str, str]:
    """Query parameters, percent-decoded; '+' stays '+' (S3 clients encode spaces as %20)."""
    query: dict[str, str] = {}
    for item in raw_query.split("&"):
        if item:
            name, _, value = item.partition("=")
            query.setdefault(unquote(name), unquote(value))
    return query


def subresource_of(query: dict[str, str]) -> str:
    """The sub-resource a request's query names ('' for none)."""
    chosen = [name for name in query if name in SUBRESOURCES]
    if "uploadId" in chosen:
        return "uploadId"
    return chosen[0] if chosen else ""


def choose(method: str, bucket: str, key: str, query: dict[str, str]) -> Handler:
    for name in query:
        lowered = name.lower()
        if (
            name not in SUBRESOURCES
            and name not in PARAMETERS
            and not lowered.startswith(("x-amz-", "response-"))
        ):
            raise not_implemented(f"the {name!r} sub-resource")
    if not bucket:
        if method == "GET":
            return buckets.list_buckets
        raise not_implemented(f"{method} on the service")
    subresource = subresource_of(query)
    handler = ROUTES.get((method, bool(key), subresource))
    if handler is None:
        what = f"{method} {'object' if key else 'bucket'}"
        raise not_implemented(f"{what} ?{subresource}" if subresource else what)
    return handler


class S3App:
    """The ASGI application; see the module docstring."""

    def __init__(
        self,
        store: ObjectStore,
        admin: AdminCredentials,
        settings: Settings,
        throttle: Throttle | None = None,
        users: Users | None = None,
    ) -> None:
        self.store = store
        self.users = users
        self.admin_users = settings.oidc_admin_list
        self.throttle = throttle or Throttle.from_settings(settings, store.database)
        self.owner = admin.username
        self.region = settings.region
        self.verifier = Verifier(Credentials(admin.username, admin.password))
        self.inline_writes = InlineWrites()
        endpoint_host = urlsplit(settings.s3_endpoint()).hostname or ""
        self.domains = {"localhost"}
        if endpoint_host and not _is_ip(endpoint_host):
            self.domains.add(endpoint_host)
        self._entry = with_cors(self._serve, settings.cors_origin_list, expose=CORS_EXPOSED)

    def address(self, host: str, path: str) -> tuple[str, str]:
        """(bucket, key) from the Host header and the decoded path."""
        bucket = self.bucket_from_host(host)
        if bucket:
            return bucket, path[1:]
        bucket, _, key = path[1:].partition("/")
        return bucket, key

    def bucket_from_host(self, host: str) -> str:
        """The bucket a virtual-host-style Host header names, or ''."""
        hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        hostname = hostname.lower()
        for domain in self.domains:
            if hostname.endswith("." + domain):
                return hostname[: -len(domain) - 1]
        return ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._entry(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body_read = _BodyTracker(receive)
        request = Request(scope, body_read)
        request_id = uuid.uuid4().hex[:16].upper()
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        path = unquote(raw_path)
        method = scope["method"]
        try:
            response = await self._handle(request, method, raw_path, path)
        except ClientDisconnect:
            log.debug("client went away during %s %s", method, loggable(path))
            return
        except S3Error as error:
            response = self._error(error, method, path, request_id)
        except StorageError as error:
            response = self._error(from_store_error(error), method, path, request_id)
        except Exception as error:
            if is_disk_full(error):
                log.warning(
                    "S3 %s %s: the data directory is full (%s)", method, loggable(path), error
                )
                failure = S3Error("InsufficientStorage", "the server's data directory is full")
            else:
                log.exception("S3 %s %s failed", method, loggable(path))
                failure = S3Error(
                    "InternalError", "We encountered an internal error. Please try again."
                )
            response = self._error(failure, method, path, request_id)
        if response.status_code >= 400 and not body_read.finished(scope):
            # The client may still send (or, after `Expect: 100-continue`, skip) the body we did
            # not read: the connection cannot carry another request.
            response.headers["Connection"] = "close"
        response.headers["x-amz-request-id"] = request_id
        await response(scope, receive, send)

    async def _handle(self, request: Request, method: str, raw_path: str, path: str) -> Response:
        raw_query = request.scope["query_string"].decode("latin-1")
        headers: dict[str, list[str]] = {}
        for name, value in request.scope["headers"]:
            headers.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
        host = (headers.get("host") or [""])[0]
        bucket, key = self.address(host, path)
        query = parse_query(raw_query)
        # A browser upload carries no request signature: its form is signed (see s3/forms.py).
        form = bool(bucket) and not raw_query and forms.is_form_upload(method, key, headers)
        principal: Principal | None = ADMIN
        if form:
            auth = _FORM
        elif is_anonymous(headers, raw_query):
            # No credentials at all: public buckets may still be read (see s3/access.py).
            auth, principal = _FORM, None
        else:
            auth, principal = self._verified(request, method, raw_path, raw_query, headers, host)
        call = S3Call(
            request=request,
            store=self.store,
            auth=auth,
            owner=self.owner,
            region=self.region,
            bucket=bucket,
            key=key,
            query=query,
            headers={name: values[0] for name, values in headers.items()},
            inline_writes=self.inline_writes,
            principal=principal,
        )
        if form:
            return await forms.post_object(call, self._form_signer(request, call))
        handler = choose(method, bucket, key, query)
        await authorize(call, method, subresource_of(query))
        return await handler(call)

    def _verified(
        self,
        request: Request,
        method: str,
        raw_path: str,
        raw_query: str,
        headers: dict[str, list[str]],
        host: str,
    ) -> tuple[Authorization, Principal]:
        """The request's signature checked, with who signed it (the admin's key pair or a
        user's; see `_throttled`)."""
        verified: list[Authorization] = []
        access_key = _claimed_access_key(headers, raw_query)
        verifier, principal = self._signer(access_key)

        def check() -> None:
            verified.append(
                verifier.verify(
                    method,
                    raw_path,
                    raw_query,
                    headers,
                    bucket_from_host=self.bucket_from_host(host),
                )
            )

        self._throttled(request, access_key, check)
        return verified[0], principal

    def _form_signer(self, request: Request, call: S3Call) -> forms.FormSigner:
        """Checks a POST form's signature with the secret of the key it names (see
        `_throttled`); the call then acts for that key's holder."""

        def check_form(access_key: str, check: Callable[[Credentials], None]) -> None:
            verifier, principal = self._signer(access_key)

            def check_with_secret() -> None:
                verifier.check_access_key(access_key)
                check(verifier.credentials)

            self._throttled(request, access_key, check_with_secret)
            call.principal = principal
            authorize_blocking(call, Action.WRITE)

        return check_form

    def _signer(self, access_key: str) -> tuple[Verifier, Principal]:
        """The verifier of `access_key`'s pair and who holds it; the admin's verifier (which
        refuses unknown keys) for any key that is no user's."""
        user = self.users.by_access_key(access_key) if self.users is not None else None
        if user is None:
            return self.verifier, ADMIN
        verifier = Verifier(Credentials(user.access_key, user.secret_key))
        return verifier, principal_of_user(user, self.admin_users)

    def _throttled(self, request: Request, access_key: str, check: Callable[[], None]) -> None:
        """Run a signature `check`, unless the request's address or key must wait after failed
        attempts (503 SlowDown, which S3 clients retry with backoff); a wrong secret counts as
        a failed attempt."""
        refused: list[S3Error] = []

        def signature_holds() -> bool:
            try:
                check()
            except S3Error as error:
                if error.code in _WRONG_SECRET:
                    refused.append(error)
                    return False
                raise
            return True

        try:
            signed = self.throttle.attempt(
                client_address(request.scope), access_key, "S3", signature_holds
            )
        except Throttled as throttled:
            error = S3Error("SlowDown", str(throttled))
            error.headers["Retry-After"] = throttled.retry_after_header
            raise error from None
        if not signed:
            raise refused[0]

    def _error(self, error: S3Error, method: str, path: str, request_id: str) -> Response:
        if error.status >= 500 and error.code not in ("NotImplemented", "SlowDown"):
            log.warning("S3 %s %s: %s", method, loggable(path), error.message)
        else:
            log.debug("S3 %s %s: %s %s", method, loggable(path), error.code, error.message)
        body = b"" if method == "HEAD" else error.xml(path, request_id)
        headers = dict(error.headers)
        if method == "HEAD":
            headers["x-amz-error-code"] = error.code
        return Response(
            body, status_code=error.status, headers=headers, media_type="application/xml"
        )


class _BodyTracker:
    """Passes the request's messages on, noting whether its body has been read to the end."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._done = False

    async def __call__(self) -> Message:
        message = await self._receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self._done = True
        return message

    def finished(self, scope: Scope) -> bool:
        """Whether nothing of the body is left unread (or there is none)."""
        if self._done:
            return True
        headers = dict(scope["headers"])
        return b"transfer-encoding" not in headers and headers.get(b"content-length", b"0") == b"0"


#: What a form upload's or an anonymous call carries in place of a verified request signature.
_FORM = Authorization("", "", "", b"", "", UNSIGNED_PAYLOAD, False)
_WRONG_SECRET = {"SignatureDoesNotMatch", "InvalidAccessKeyId"}
#: Answer headers a browser page reads (multipart uploads need each part's ETag).
CORS_EXPOSED = (
    "ETag",
    "Content-Length",
    "Content-Range",
    "Last-Modified",
    "x-amz-request-id",
    "x-amz-version-id",
    "x-amz-delete-marker",
    "x-amz-checksum-crc32",
    "x-amz-checksum-crc32c",
    "x-amz-checksum-sha1",
    "x-amz-checksum-sha256",
)
_CREDENTIAL = re.compile(r"Credential=([^/,\s]*)/")
_SIGV2_KEY = re.compile(r"AWS ([^:\s]*):")


def _claimed_access_key(headers: dict[str, list[str]], raw_query: str) -> str:
    """The access key a request says it is signed with, before the signature is checked."""
    header = (headers.get("authorization") or [""])[0]
    found = _CREDENTIAL.search(header) or _SIGV2_KEY.match(header)
    if found is None:
        found = re.search(r"(?:X-Amz-Credential|AWSAccessKeyId)=([^%/&]*)", raw_query)
    return unquote(found.group(1)) if found else ""


def loggable(text: str) -> str:
    """`text` with control and non-ASCII characters escaped (`\\n`, `\\x1b`): a path comes from
    whoever sent the request, signed or not, and must not forge log lines or colour a terminal."""
    return text.encode("unicode_escape").decode("ascii")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def create_s3_app(
    store: ObjectStore,
    admin: AdminCredentials,
    settings: Settings,
    throttle: Throttle | None = None,
    users: Users | None = None,
) -> ASGIApp:
    return S3App(store, admin, settings, throttle, users)
