"""Who may do what on the S3 port: each request checked against its bucket's owner and sharing
(`oscarpy.auth.buckets` decides) before its operation runs.

A request with no credentials at all is anonymous (`principal` None): it may read a public
bucket (GET, HEAD, list) and nothing else. A refused request for a bucket that does not exist
answers `NoSuchBucket`, as S3 does, so that clients tell a typo from a permission.
"""

from __future__ import annotations

from typing import NoReturn

from oscarpy.auth.buckets import Action, BucketAccessTable, allows
from oscarpy.s3.call import S3Call
from oscarpy.s3.errors import S3Error

#: Sub-resources that change or reveal who may use a bucket: the owner's (and admins') only.
MANAGING = frozenset({"acl", "policy", "publicAccessBlock", "object-lock", "versioning"})
#: Reads of sub-resources that are a listing of writes in progress, not of content.
WRITER_READS = frozenset({"uploads", "uploadId"})


def is_anonymous(headers: dict[str, list[str]], raw_query: str) -> bool:
    """No Authorization header and no presigned-URL signature: nobody claims to be anyone."""
    if (headers.get("authorization") or [""])[0]:
        return False
    lowered = raw_query.lower()
    return not any(
        name in lowered
        for name in ("x-amz-credential=", "x-amz-algorithm=", "x-amz-signature=", "awsaccesskeyid=")
    )


def required_action(method: str, on_object: bool, subresource: str) -> Action:
    """The permission an S3 operation needs, from its method, level and sub-resource."""
    if subresource in MANAGING:
        # Reading a bucket's versioning or object lock settings is reading it.
        if method == "GET" and subresource in ("versioning", "object-lock"):
            return Action.READ
        return Action.MANAGE
    if method == "DELETE" and not on_object:
        return Action.MANAGE
    if method in ("GET", "HEAD") and subresource not in WRITER_READS:
        return Action.READ
    return Action.WRITE


def table_of(call: S3Call) -> BucketAccessTable:
    return BucketAccessTable(call.store.database)


async def authorize(call: S3Call, method: str, subresource: str) -> None:
    """Raise the S3 error a caller who may not do this request gets; see the module docstring.

    ListBuckets (filtered to what the caller may see) and CreateBucket (ownership decided on
    creation) check themselves; anonymous callers get neither.
    """
    if not call.bucket or (method == "PUT" and not call.key and not subresource):
        if call.principal is None:
            _refuse(S3Error("AccessDenied", "anonymous requests are not allowed; sign requests"))
        return
    if call.principal is not None and call.principal.admin:
        return
    found = await call.run(refusal, call, required_action(method, bool(call.key), subresource))
    if found is not None:
        _refuse(found)


def authorize_blocking(call: S3Call, action: Action) -> None:
    """`authorize` for code that already runs in a worker thread or cannot wait (a POST form
    upload, once its signature named the signer)."""
    found = refusal(call, action)
    if found is not None:
        _refuse(found)


def refusal(call: S3Call, action: Action) -> S3Error | None:
    """The error that refuses `action` on the call's bucket to its principal, or None
    (blocking: it reads the state DB)."""
    access = table_of(call).get(call.bucket)
    if allows(access, call.principal, action):
        return None
    if not call.store.bucket_exists(call.bucket):
        return S3Error(
            "NoSuchBucket", "The specified bucket does not exist", BucketName=call.bucket
        )
    if call.principal is None:
        return S3Error("AccessDenied", "Access Denied: the bucket is not public; sign requests")
    return S3Error("AccessDenied", "Access Denied")


def _refuse(error: S3Error) -> NoReturn:
    # The body of a refused upload is never read: the connection cannot carry the next request.
    error.headers["Connection"] = "close"
    raise error
