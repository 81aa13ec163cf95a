"""Who owns each bucket of the embedded store and who else may use it: the one place that decides.

OSCAR's model, kept as it is so that its clients read the same answers: a bucket has an `owner`
and a `visibility`, `private` (owner and admins), `restricted` (plus `allowed_users`) or
`public` (every signed-in user). Owners and admins manage a bucket (delete it, change who may use
it); the others read and write its objects as visibility allows, as OSCAR's MinIO policies do.

S3's own sharing vocabulary (canned ACLs, bucket policies, the public access block) is mapped
onto the same record by `oscarpy.s3.sharing`, never kept beside it, so one answer holds for the
S3 port, the REST API and the dashboard. Besides OSCAR's fields the record keeps:

- `anonymous_read`: a public bucket is readable without credentials (GET, HEAD, list) unless
  the owner asked otherwise (`authenticated-read`, or a public access block);
- `public_access_block`: S3's four switches, as the owner set them;
- `service`: the service the bucket was made for (OSCAR refuses to change such a bucket's
  visibility through `/system/buckets`; the service definition decides it).

A bucket without a record (made before records existed) is the admin's and private.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

from sqlalchemy import JSON, Boolean, String, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from oscarpy.auth.principal import ADMIN_USER_ID, Principal
from oscarpy.db import Base, Database

Visibility = Literal["private", "restricted", "public"]
VISIBILITIES: tuple[str, ...] = get_args(Visibility)

#: S3's public access block switches, in S3's order.
BLOCK_SWITCHES = (
    "BlockPublicAcls",
    "IgnorePublicAcls",
    "BlockPublicPolicy",
    "RestrictPublicBuckets",
)


class Action(enum.Enum):
    """What a request does to a bucket."""

    READ = "read"
    """List it, read its objects and their metadata."""
    WRITE = "write"
    """Add, replace and delete its objects (multipart uploads too)."""
    MANAGE = "manage"
    """Delete the bucket, change who may use it (visibility, ACL, policy, access block)."""


class BucketAccessRow(Base):
    __tablename__ = "bucket_access"

    bucket: Mapped[str] = mapped_column(String(63), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    visibility: Mapped[str] = mapped_column(String(16))
    allowed_users: Mapped[list[str]] = mapped_column(JSON)
    anonymous_read: Mapped[bool] = mapped_column(Boolean)
    public_access_block: Mapped[dict[str, bool]] = mapped_column(JSON)
    service: Mapped[str | None] = mapped_column(String(39), nullable=True)


@dataclass(frozen=True)
class BucketAccess:
    """One bucket's ownership and sharing; see the module docstring."""

    bucket: str
    owner: str = ADMIN_USER_ID
    visibility: Visibility = "private"
    allowed_users: tuple[str, ...] = ()
    anonymous_read: bool = True
    public_access_block: dict[str, bool] = field(default_factory=dict)
    service: str | None = None

    @property
    def anonymous_readable(self) -> bool:
        """Readable without credentials: public, not turned off by the owner."""
        blocked = self.public_access_block
        return (
            self.visibility == "public"
            and self.anonymous_read
            and not blocked.get("IgnorePublicAcls")
            and not blocked.get("RestrictPublicBuckets")
        )


def allows(access: BucketAccess, principal: Principal | None, action: Action) -> bool:
    """Whether `principal` (`None`: an anonymous request) may do `action` on the bucket."""
    if principal is None:
        return action is Action.READ and access.anonymous_readable
    if principal.admin or principal.user_id == access.owner:
        return True
    if action is Action.MANAGE:
        return False
    if access.visibility == "public":
        return True
    if access.visibility == "restricted":
        return principal.user_id in access.allowed_users
    return False


def isolated_bucket(bucket: str, user_id: str) -> str:
    """The private bucket OSCAR makes for one allowed user of a service with
    `isolation_level: USER`: the service's bucket name, '-', the first 10 characters of the
    user's id (lower-cased here: bucket names are)."""
    return f"{bucket}-{user_id[:10].lower()}"


class BucketAccessTable:
    """The ownership records of one state DB."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def get(self, bucket: str) -> BucketAccess:
        with self.database.session() as session:
            row = session.get(BucketAccessRow, bucket)
            return _record(row) if row is not None else BucketAccess(bucket)

    def get_many(self, buckets: Iterable[str]) -> dict[str, BucketAccess]:
        names = list(buckets)
        found: dict[str, BucketAccess] = {name: BucketAccess(name) for name in names}
        with self.database.session() as session:
            for start in range(0, len(names), 500):
                query = select(BucketAccessRow).where(
                    BucketAccessRow.bucket.in_(names[start : start + 500])
                )
                for row in session.scalars(query):
                    found[row.bucket] = _record(row)
        return found

    def claim(
        self,
        bucket: str,
        owner: str,
        *,
        visibility: Visibility = "private",
        allowed_users: Sequence[str] = (),
        service: str | None = None,
        anonymous_read: bool = True,
    ) -> BucketAccess:
        """Record a bucket just created: `owner`'s, shared as given. Replaces whatever record
        a deleted bucket of that name left behind."""
        access = BucketAccess(
            bucket,
            owner=owner,
            visibility=visibility,
            allowed_users=tuple(dict.fromkeys(allowed_users)),
            service=service,
            anonymous_read=anonymous_read,
        )
        self.save(access)
        return access

    def save(self, access: BucketAccess) -> None:
        with self.database.writing() as session:
            row = session.get(BucketAccessRow, access.bucket)
            if row is None:
                row = BucketAccessRow(bucket=access.bucket)
                session.add(row)
            row.owner = access.owner
            row.visibility = access.visibility
            row.allowed_users = list(access.allowed_users)
            row.anonymous_read = access.anonymous_read
            row.public_access_block = dict(access.public_access_block)
            row.service = access.service

    def update(self, bucket: str, **changes: Any) -> BucketAccess:
        """The bucket's record with `changes` (fields of `BucketAccess`) saved."""
        if "allowed_users" in changes:
            changes["allowed_users"] = tuple(dict.fromkeys(changes["allowed_users"]))
        access = replace(self.get(bucket), **changes)
        self.save(access)
        return access

    def forget(self, bucket: str) -> None:
        with self.database.writing() as session:
            session.execute(delete(BucketAccessRow).where(BucketAccessRow.bucket == bucket))


def _record(row: BucketAccessRow) -> BucketAccess:
    visibility = row.visibility if row.visibility in VISIBILITIES else "private"
    return BucketAccess(
        row.bucket,
        owner=row.owner,
        visibility=visibility,  # type: ignore[arg-type]
        allowed_users=tuple(row.allowed_users or ()),
        anonymous_read=row.anonymous_read,
        public_access_block=dict(row.public_access_block or {}),
        service=row.service,
    )
