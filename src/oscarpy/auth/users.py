"""Users signed in through OpenID Connect, each with their own S3 key pair.

A user is created the first time a token of a trusted issuer signs them in. Their `user_id`
is the token's `sub`, as OSCAR writes owners and `allowed_users`, so that service definitions
move between OSCAR and oscar-py unchanged. A `sub` is unique within its issuer only: when a
second trusted issuer presents a `sub` an earlier issuer already signed in, it is refused
rather than handed the first user's services and files.

Each user gets an S3 key pair for the embedded store. The secret is kept in the state DB as
given, since verifying a SigV4 signature needs it; it is masked in every log line and shown
only to its user (`GET /system/config`), who may rotate it.
"""

from __future__ import annotations

import secrets
import string
import time
from dataclasses import dataclass

from sqlalchemy import Float, String, select, update
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from oscarpy.auth.credentials import typeable_secret
from oscarpy.auth.principal import ADMIN_USER_ID, Principal
from oscarpy.db import Base, Database
from oscarpy.log import register_secret

_KEY_ALPHABET = string.ascii_uppercase + string.digits
_ACCESS_KEY_PREFIX = "OSCU"
_SECRET_BYTES = 30


class User(Base):
    __tablename__ = "users"

    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    issuer: Mapped[str] = mapped_column(String(1024))
    subject: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255), default="")
    access_key: Mapped[str] = mapped_column(String(64), unique=True)
    secret_key: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[float] = mapped_column(Float)


@dataclass(frozen=True)
class UserRecord:
    user_id: str
    issuer: str
    name: str
    access_key: str
    secret_key: str

    def __repr__(self) -> str:
        return f"UserRecord(user_id={self.user_id!r}, issuer={self.issuer!r})"


class SubjectRefused(Exception):
    """A token's subject cannot be a user here (see the module docstring)."""


def _record(row: User) -> UserRecord:
    register_secret(row.secret_key)
    return UserRecord(row.user_id, row.issuer, row.name, row.access_key, row.secret_key)


def _new_access_key() -> str:
    return _ACCESS_KEY_PREFIX + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))


def _new_secret_key() -> str:
    secret = typeable_secret(_SECRET_BYTES)
    register_secret(secret)
    return secret


class Users:
    """The users of one state DB."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def sign_in(self, issuer: str, subject: str, name: str = "") -> UserRecord:
        """The user `subject` of `issuer`, created with a fresh key pair on first sign-in."""
        if not subject or subject == ADMIN_USER_ID:
            raise SubjectRefused(f"the subject {subject!r} cannot sign in here")
        found = self.get(subject)
        if found is None:
            insert = postgres_insert if self.database.dialect == "postgresql" else sqlite_insert
            with self.database.writing() as session:
                session.execute(
                    insert(User)
                    .values(
                        user_id=subject,
                        issuer=issuer,
                        subject=subject,
                        name=name[:255],
                        access_key=_new_access_key(),
                        secret_key=_new_secret_key(),
                        created_at=time.time(),
                    )
                    .on_conflict_do_nothing(index_elements=["user_id"])
                )
            found = self.get(subject)
            assert found is not None
        if found.issuer != issuer:
            raise SubjectRefused(
                f"the subject {subject!r} already belongs to a user of another issuer"
            )
        return found

    def get(self, user_id: str) -> UserRecord | None:
        with self.database.session() as session:
            row = session.get(User, user_id)
            return _record(row) if row is not None else None

    def by_access_key(self, access_key: str) -> UserRecord | None:
        """The user whose S3 key pair starts with `access_key`."""
        if not access_key.startswith(_ACCESS_KEY_PREFIX):
            return None
        with self.database.session() as session:
            row = session.scalar(select(User).where(User.access_key == access_key))
            return _record(row) if row is not None else None

    def rotate_keys(self, user_id: str) -> UserRecord:
        """A new key pair for `user_id`; the old one stops working at once."""
        with self.database.writing() as session:
            session.execute(
                update(User)
                .where(User.user_id == user_id)
                .values(access_key=_new_access_key(), secret_key=_new_secret_key())
            )
        found = self.get(user_id)
        if found is None:
            raise KeyError(user_id)
        return found


def principal_of_user(
    user: UserRecord, admin_users: list[str], groups: frozenset[str] = frozenset()
) -> Principal:
    """The `Principal` of a user, whichever edge signed them in: an admin when listed in
    OSCAR_OIDC_ADMIN_USERS."""
    return Principal(
        user.user_id,
        admin=user.user_id in admin_users,
        name=user.name or user.user_id,
        groups=groups,
    )
