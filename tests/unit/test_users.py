"""Users of the state DB (SQLite and PostgreSQL): first sign-in, key pairs, rotation."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from oscarpy.auth.credentials import AdminCredentials
from oscarpy.auth.principal import ADMIN, ADMIN_USER_ID
from oscarpy.auth.users import SubjectRefused, Users, principal_of_user
from oscarpy.config import Settings
from oscarpy.db import Database
from oscarpy.s3.app import S3App
from oscarpy.storage.store import ObjectStore

ISSUER, OTHER_ISSUER = "http://127.0.0.1:1", "http://127.0.0.1:2"


def test_first_sign_in_creates_the_user_once_even_when_concurrent(database: Database) -> None:
    users = Users(database)
    with ThreadPoolExecutor(8) as pool:
        records = list(pool.map(lambda _: users.sign_in(ISSUER, "alice", "Alice"), range(16)))
    assert {(r.user_id, r.access_key, r.secret_key) for r in records} == {
        (records[0].user_id, records[0].access_key, records[0].secret_key)
    }
    alice = records[0]
    assert alice.user_id == "alice" and alice.name == "Alice"
    assert users.by_access_key(alice.access_key) == alice
    assert alice.secret_key not in repr(alice)
    bob = users.sign_in(ISSUER, "bob")
    assert bob.access_key != alice.access_key and bob.secret_key != alice.secret_key


def test_rotation_replaces_the_pair_at_once(database: Database) -> None:
    users = Users(database)
    before = users.sign_in(ISSUER, "alice")
    after = users.rotate_keys("alice")
    assert (after.access_key, after.secret_key) != (before.access_key, before.secret_key)
    assert users.by_access_key(before.access_key) is None
    assert users.by_access_key(after.access_key) == after
    assert users.sign_in(ISSUER, "alice") == after


def test_subjects_that_cannot_be_users(database: Database) -> None:
    users = Users(database)
    with pytest.raises(SubjectRefused):
        users.sign_in(ISSUER, ADMIN_USER_ID)
    with pytest.raises(SubjectRefused):
        users.sign_in(ISSUER, "")
    users.sign_in(ISSUER, "alice")
    # The same `sub` from another issuer is another person: never given alice's things.
    with pytest.raises(SubjectRefused, match="another issuer"):
        users.sign_in(OTHER_ISSUER, "alice")
    assert users.by_access_key("oscar") is None  # the admin's key is no user's


def test_admin_users_are_admins(database: Database) -> None:
    users = Users(database)
    carol = users.sign_in(ISSUER, "carol")
    assert principal_of_user(carol, ["carol"]).admin
    assert not principal_of_user(users.sign_in(ISSUER, "dave"), ["carol"]).admin


def test_the_s3_edge_names_the_user_who_signed(database: Database, tmp_path: Path) -> None:
    """A request signed with a user's pair is that user's (`S3Call.principal`); the admin's
    key and unknown keys go to the admin's verifier, which refuses what is not the admin's."""
    users = Users(database)
    alice = users.sign_in(ISSUER, "alice")
    admin = AdminCredentials("oscar", "admin-password", generated=False)
    settings = Settings(data_dir=tmp_path, oidc_admin_users="carol")
    app = S3App(ObjectStore(database, tmp_path), admin, settings, users=users)
    verifier, principal = app._signer(alice.access_key)
    assert principal == principal_of_user(alice, [])
    assert verifier.credentials.secret_key == alice.secret_key
    assert app._signer("oscar") == (app.verifier, ADMIN)
    assert app._signer("OSCUNOBODY") == (app.verifier, ADMIN)
    carol = users.sign_in(ISSUER, "carol")
    assert app._signer(carol.access_key)[1].admin
