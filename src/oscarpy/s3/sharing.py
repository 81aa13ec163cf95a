"""S3's sharing vocabulary, mapped onto OSCAR's bucket visibility (`oscarpy.auth.buckets`).

- Canned ACLs: `private` makes the bucket private, `public-read` and `public-read-write` public
  (every signed-in user reads and writes, anonymous callers read), `authenticated-read` public
  without anonymous reads. Get…Acl renders the record as grants. An object's ACL is its
  bucket's: PutObjectAcl accepts the bucket's own canned ACL and refuses any other rather than
  pretend one object differs.
- Bucket policies, the subset that says the same things: `Allow` statements on this bucket for
  `"*"` (read actions only: public-read) and for named users (their ids, or IAM user ARNs
  ending in them: restricted to those users). GetBucketPolicy renders the record as a policy.
- The public access block: its four switches are kept; `BlockPublicAcls` and
  `BlockPublicPolicy` refuse making the bucket public, `IgnorePublicAcls` and
  `RestrictPublicBuckets` turn anonymous reads off.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from oscarpy.auth.buckets import BLOCK_SWITCHES, BucketAccess, Visibility
from oscarpy.auth.principal import ADMIN_USER_ID
from oscarpy.s3.access import table_of
from oscarpy.s3.call import S3Call
from oscarpy.s3.documents import MAX_REQUEST_DOCUMENT, document, elements, owner, parse, text_of
from oscarpy.s3.errors import S3Error, not_implemented

CANNED_ACLS: dict[str, tuple[Visibility, bool]] = {
    "private": ("private", True),
    "public-read": ("public", True),
    "public-read-write": ("public", True),
    "authenticated-read": ("public", False),
}
_ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
_AUTHENTICATED = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
_READ_ACTIONS = frozenset(
    {
        "s3:GetObject",
        "s3:ListBucket",
        "s3:GetBucketLocation",
        "s3:GetObjectVersion",
        "s3:ListBucketVersions",
    }
)
_USER_ACTIONS = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"]


def _xml(root: str, body: str) -> Response:
    return Response(document(root, body), media_type="application/xml")


async def _access(call: S3Call) -> BucketAccess:
    if not await call.run(call.store.bucket_exists, call.bucket):
        raise S3Error("NoSuchBucket", "The specified bucket does not exist", BucketName=call.bucket)
    if call.key and await call.run(call.store.head, call.bucket, call.key) is None:
        raise S3Error("NoSuchKey", "The specified key does not exist.", Key=call.key)
    return await call.run(table_of(call).get, call.bucket)


# -- ACLs --------------------------------------------------------------------------------------


def canned_acl_of(access: BucketAccess) -> str:
    """The canned ACL that says what the record says (`private` for restricted buckets: S3
    has no canned ACL for a list of users)."""
    if access.visibility != "public":
        return "private"
    return "public-read" if access.anonymous_readable else "authenticated-read"


def _grant(grantee: str, permission: str) -> str:
    return f"<Grant>{grantee}<Permission>{permission}</Permission></Grant>"


def _group(uri: str) -> str:
    return (
        '<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Group">'
        f"{elements(URI=uri)}</Grantee>"
    )


def _user(user_id: str) -> str:
    return (
        '<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser">'
        f"{elements(ID=user_id, DisplayName=user_id)}</Grantee>"
    )


def _owner_grantee(call: S3Call, access: BucketAccess) -> str:
    return owner(_owner_name(call, access), "Grantee").replace(
        "<Grantee>",
        '<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser">',
    )


def _owner_name(call: S3Call, access: BucketAccess) -> str:
    # The admin's buckets name the admin as every other answer does (by their S3 user name).
    return call.owner if access.owner == ADMIN_USER_ID else access.owner


async def get_acl(call: S3Call) -> Response:
    access = await _access(call)
    grants = [_grant(_owner_grantee(call, access), "FULL_CONTROL")]
    if access.visibility == "public":
        grants += [_grant(_group(_AUTHENTICATED), "READ"), _grant(_group(_AUTHENTICATED), "WRITE")]
        if access.anonymous_readable:
            grants.append(_grant(_group(_ALL_USERS), "READ"))
    elif access.visibility == "restricted":
        for user in access.allowed_users:
            grants += [_grant(_user(user), "READ"), _grant(_user(user), "WRITE")]
    body = owner(_owner_name(call, access)) + f"<AccessControlList>{''.join(grants)}"
    return _xml("AccessControlPolicy", body + "</AccessControlList>")


def _requested_acl(call: S3Call, body: bytes) -> str:
    if any(name.startswith("x-amz-grant-") for name in call.headers):
        raise not_implemented("ACL grants (x-amz-grant-*); use a canned ACL (x-amz-acl)")
    canned = call.headers.get("x-amz-acl")
    if canned is None:
        if body.strip():
            raise not_implemented("ACL documents; use a canned ACL (x-amz-acl)")
        raise S3Error("InvalidRequest", "a canned ACL (x-amz-acl) is required")
    if canned not in CANNED_ACLS:
        raise S3Error("InvalidArgument", f"unknown canned ACL {canned!r}", ArgumentName="x-amz-acl")
    return canned


async def put_acl(call: S3Call) -> Response:
    body = await call.body(MAX_REQUEST_DOCUMENT)
    canned = _requested_acl(call, body)
    access = await _access(call)
    if call.key:
        if canned != canned_acl_of(access):
            raise not_implemented(
                f"an object ACL other than its bucket's ({canned_acl_of(access)}); "
                "objects share their bucket's ACL"
            )
        return Response(status_code=200)
    visibility, anonymous = CANNED_ACLS[canned]
    if visibility == "public" and access.public_access_block.get("BlockPublicAcls"):
        raise S3Error("AccessDenied", "the bucket's public access block refuses public ACLs")
    await call.run(
        table_of(call).update, call.bucket, visibility=visibility, anonymous_read=anonymous
    )
    return Response(status_code=200)


# -- bucket policies ---------------------------------------------------------------------------


def render_policy(access: BucketAccess) -> dict[str, Any] | None:
    """The policy that grants what the record grants; None for a private bucket."""
    resources = [f"arn:aws:s3:::{access.bucket}", f"arn:aws:s3:::{access.bucket}/*"]
    statements: list[dict[str, Any]] = []
    if access.visibility == "public" and access.anonymous_readable:
        statements.append(
            {
                "Sid": "PublicRead",
                "Effect": "Allow",
                "Principal": "*",
                "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": resources,
            }
        )
    if access.visibility == "restricted" and access.allowed_users:
        statements.append(
            {
                "Sid": "AllowedUsers",
                "Effect": "Allow",
                "Principal": {"AWS": list(access.allowed_users)},
                "Action": _USER_ACTIONS,
                "Resource": resources,
            }
        )
    return {"Version": "2012-10-17", "Statement": statements} if statements else None


async def get_policy(call: S3Call) -> Response:
    policy = render_policy(await _access(call))
    if policy is None:
        raise S3Error(
            "NoSuchBucketPolicy", "The bucket policy does not exist", BucketName=call.bucket
        )
    return Response(json.dumps(policy), media_type="application/json")


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _malformed(message: str) -> S3Error:
    return S3Error("MalformedPolicy", message)


def _principals(statement: dict[str, Any]) -> tuple[bool, list[str]]:
    """(everyone, named users) of one statement."""
    principal = statement.get("Principal")
    if principal == "*":
        return True, []
    if not isinstance(principal, dict) or set(principal) - {"AWS"} or "AWS" not in principal:
        raise _malformed('Principal must be "*" or {"AWS": [...]}')
    names = [str(name) for name in _listed(principal["AWS"])]
    if "*" in names:
        return True, []
    # An IAM user ARN names the user by its last path element; a bare name is the user id.
    return False, [name.rsplit(":user/", 1)[-1] if ":user/" in name else name for name in names]


def _check_resources(statement: dict[str, Any], bucket: str) -> None:
    for resource in _listed(statement.get("Resource")):
        text = str(resource)
        if text not in (f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*") and not (
            text.startswith(f"arn:aws:s3:::{bucket}/")
        ):
            raise _malformed(f"Policy has invalid resource {text!r}")


def parse_policy(text: bytes, bucket: str) -> tuple[bool, list[str]]:
    """(public read, allowed users) a policy document grants; refuses what the visibility
    model cannot say (Deny, conditions, anonymous writes) rather than keep it half."""
    try:
        policy = json.loads(text)
    except (ValueError, UnicodeDecodeError) as error:
        raise _malformed("the policy is not valid JSON") from error
    if not isinstance(policy, dict) or not isinstance(policy.get("Statement"), list | dict):
        raise _malformed("the policy needs a Statement")
    public = False
    users: list[str] = []
    for statement in _listed(policy["Statement"]):
        if not isinstance(statement, dict):
            raise _malformed("each Statement must be an object")
        if statement.get("Effect") != "Allow":
            raise not_implemented("policy statements other than Effect Allow")
        if "Condition" in statement or "NotPrincipal" in statement or "NotAction" in statement:
            raise not_implemented("policy conditions, NotPrincipal and NotAction")
        _check_resources(statement, bucket)
        everyone, named = _principals(statement)
        actions = {str(action) for action in _listed(statement.get("Action"))}
        if everyone:
            if not actions or not actions <= _READ_ACTIONS:
                raise not_implemented(
                    "granting anything but reads to everyone; anonymous callers only read"
                )
            public = True
        else:
            users.extend(named)
    return public, users


async def put_policy(call: S3Call) -> Response:
    body = await call.body(20 * 1024)
    access = await _access(call)
    public, users = parse_policy(body, call.bucket)
    if public and access.public_access_block.get("BlockPublicPolicy"):
        raise S3Error("AccessDenied", "the bucket's public access block refuses public policies")
    visibility: Visibility = "public" if public else "restricted" if users else "private"
    await call.run(
        table_of(call).update,
        call.bucket,
        visibility=visibility,
        anonymous_read=True,
        allowed_users=users,
    )
    return Response(status_code=204)


async def delete_policy(call: S3Call) -> Response:
    await _access(call)
    await call.run(
        table_of(call).update,
        call.bucket,
        visibility="private",
        allowed_users=(),
        anonymous_read=True,
    )
    return Response(status_code=204)


# -- the public access block -------------------------------------------------------------------


async def get_public_access_block(call: S3Call) -> Response:
    access = await _access(call)
    if not access.public_access_block:
        raise S3Error(
            "NoSuchPublicAccessBlockConfiguration",
            "The public access block configuration was not found",
            BucketName=call.bucket,
        )
    switches = {name: access.public_access_block.get(name, False) for name in BLOCK_SWITCHES}
    return _xml("PublicAccessBlockConfiguration", elements(**switches))


async def put_public_access_block(call: S3Call) -> Response:
    root = parse(await call.body(MAX_REQUEST_DOCUMENT))
    if root.tag != "PublicAccessBlockConfiguration":
        raise S3Error("MalformedXML", "expected a PublicAccessBlockConfiguration")
    switches: dict[str, bool] = {}
    for name in BLOCK_SWITCHES:
        value = (text_of(root, name) or "false").strip().lower()
        if value not in ("true", "false"):
            raise S3Error("MalformedXML", f"{name} must be true or false")
        switches[name] = value == "true"
    await _access(call)
    await call.run(table_of(call).update, call.bucket, public_access_block=switches)
    return Response(status_code=200)


async def delete_public_access_block(call: S3Call) -> Response:
    await _access(call)
    await call.run(table_of(call).update, call.bucket, public_access_block={})
    return Response(status_code=204)
