"""Who may do what on a bucket, decided once for the S3 port, the REST API and the dashboard:
the decision matrix over principals, the S3 requests it guards, and the records a state DB
keeps (service buckets belong to the service's owner)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import pytest

from oscarpy.auth.buckets import Action, BucketAccess, BucketAccessTable, allows
from oscarpy.auth.principal import ADMIN, Principal
from oscarpy.db import Database
from oscarpy.s3.access import authorize, required_action
from oscarpy.s3.call import S3Call
from oscarpy.s3.errors import S3Error
from oscarpy.s3.sharing import parse_policy, render_policy
from oscarpy.services.model import parse_service
from oscarpy.services.registry import ServiceRegistry
from oscarpy.storage.store import ObjectStore
from oscarpy.web.dashboard import DashboardError
from oscarpy.web.storage import _require_bucket

OWNER = Principal("owner@issuer")
FRIEND = Principal("friend@issuer")
STRANGER = Principal("stranger@issuer")


def bucket(visibility: Any, **overrides: Any) -> BucketAccess:
    return BucketAccess(
        "data",
        owner=OWNER.user_id,
        visibility=visibility,
        allowed_users=("friend@issuer",),
        **overrides,
    )


@pytest.mark.parametrize(
    ("visibility", "who", "read", "write", "manage"),
    [
        ("private", ADMIN, True, True, True),
        ("private", OWNER, True, True, True),
        ("private", FRIEND, False, False, False),
        ("private", STRANGER, False, False, False),
        ("private", None, False, False, False),
        ("restricted", OWNER, True, True, True),
        ("restricted", FRIEND, True, True, False),
        ("restricted", STRANGER, False, False, False),
        ("restricted", None, False, False, False),
        ("public", FRIEND, True, True, False),
        ("public", STRANGER, True, True, False),
        ("public", None, True, False, False),
    ],
)
def test_the_decision_follows_oscars_visibility(
    visibility: str, who: Principal | None, read: bool, write: bool, manage: bool
) -> None:
    access = bucket(visibility)
    assert allows(access, who, Action.READ) is read
    assert allows(access, who, Action.WRITE) is write
    assert allows(access, who, Action.MANAGE) is manage


def test_anonymous_reads_stop_when_the_owner_turns_them_off() -> None:
    assert not allows(bucket("public", anonymous_read=False), None, Action.READ)
    for switch in ("IgnorePublicAcls", "RestrictPublicBuckets"):
        blocked = bucket("public", public_access_block={switch: True})
        assert not allows(blocked, None, Action.READ)
        assert allows(blocked, STRANGER, Action.READ)  # signed-in users still may
    assert allows(
        bucket("public", public_access_block={"BlockPublicAcls": True}), None, Action.READ
    )


@pytest.mark.parametrize(
    ("method", "on_object", "subresource", "action"),
    [
        ("GET", True, "", Action.READ),
        ("HEAD", True, "", Action.READ),
        ("GET", False, "", Action.READ),
        ("GET", False, "location", Action.READ),
        ("GET", False, "versioning", Action.READ),
        ("PUT", True, "", Action.WRITE),
        ("DELETE", True, "", Action.WRITE),
        ("POST", False, "delete", Action.WRITE),
        ("GET", False, "uploads", Action.WRITE),
        ("GET", True, "uploadId", Action.WRITE),
        ("DELETE", False, "", Action.MANAGE),
        ("GET", False, "acl", Action.MANAGE),
        ("PUT", True, "acl", Action.MANAGE),
        ("PUT", False, "policy", Action.MANAGE),
        ("GET", False, "publicAccessBlock", Action.MANAGE),
        ("PUT", False, "versioning", Action.MANAGE),
    ],
)
def test_each_s3_request_needs_its_permission(
    method: str, on_object: bool, subresource: str, action: Action
) -> None:
    assert required_action(method, on_object, subresource) is action


def test_a_policy_maps_onto_visibility_and_back() -> None:
    public_read = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": ["*"]},
                "Action": ["s3:GetObject"],
                "Resource": ["arn:aws:s3:::data/*"],
            }
        ],
    }
    assert parse_policy(_json(public_read), "data") == (True, [])
    grants = {
        "Statement": {
            "Effect": "Allow",
            "Principal": {"AWS": ["arn:aws:iam::000000000000:user/friend@issuer", "other"]},
            "Action": "s3:*",
            "Resource": "arn:aws:s3:::data/*",
        }
    }
    assert parse_policy(_json(grants), "data") == (False, ["friend@issuer", "other"])
    rendered = render_policy(bucket("restricted"))
    assert rendered is not None
    assert parse_policy(_json(rendered), "data") == (False, ["friend@issuer"])
    assert render_policy(bucket("private")) is None


@pytest.mark.parametrize(
    ("statement", "code"),
    [
        ({"Effect": "Deny", "Principal": "*", "Action": "s3:*"}, "NotImplemented"),
        ({"Effect": "Allow", "Principal": "*", "Action": "s3:PutObject"}, "NotImplemented"),
        (
            {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Condition": {}},
            "NotImplemented",
        ),
        (
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::other/*",
            },
            "MalformedPolicy",
        ),
        (
            {"Effect": "Allow", "Principal": {"Service": "x"}, "Action": "s3:GetObject"},
            "MalformedPolicy",
        ),
    ],
)
def test_a_policy_the_model_cannot_say_is_refused_whole(
    statement: dict[str, Any], code: str
) -> None:
    statement.setdefault("Resource", "arn:aws:s3:::data/*")
    with pytest.raises(S3Error) as raised:
        parse_policy(_json({"Statement": [statement]}), "data")
    assert raised.value.code == code


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ObjectStore]:
    database = Database(f"sqlite:///{tmp_path / 'state.db'}")
    database.migrate()
    yield ObjectStore(database, tmp_path / "data")
    database.close()


def _call(store: ObjectStore, who: Principal | None, bucket_name: str, key: str = "") -> S3Call:
    return S3Call(
        request=None,  # type: ignore[arg-type]  # `authorize` reads no request
        store=store,
        auth=None,  # type: ignore[arg-type]
        owner="oscar",
        region="us-east-1",
        bucket=bucket_name,
        key=key,
        query={},
        headers={},
        principal=who,
    )


def _refusal(
    store: ObjectStore, who: Principal | None, method: str, name: str, key: str = ""
) -> str:
    try:
        anyio.run(authorize, _call(store, who, name, key), method, "")
    except S3Error as error:
        return error.code
    return ""


def test_s3_requests_of_other_users_are_refused_and_missing_buckets_named(
    store: ObjectStore,
) -> None:
    table = BucketAccessTable(store.database)
    store.create_bucket("mine")
    table.claim("mine", OWNER.user_id, visibility="restricted", allowed_users=["friend@issuer"])
    assert _refusal(store, OWNER, "DELETE", "mine") == ""
    assert _refusal(store, FRIEND, "PUT", "mine", "k") == ""
    assert _refusal(store, FRIEND, "DELETE", "mine") == "AccessDenied"
    assert _refusal(store, STRANGER, "GET", "mine", "k") == "AccessDenied"
    assert _refusal(store, None, "GET", "mine", "k") == "AccessDenied"
    assert _refusal(store, STRANGER, "GET", "absent", "k") == "NoSuchBucket"
    assert _refusal(store, None, "GET", "absent", "k") == "NoSuchBucket"
    table.update("mine", visibility="public")
    assert _refusal(store, None, "GET", "mine", "k") == ""
    assert _refusal(store, None, "PUT", "mine", "k") == "AccessDenied"
    # A bucket made before ownership was recorded is the admin's, private.
    store.create_bucket("older")
    assert _refusal(store, STRANGER, "GET", "older") == "AccessDenied"
    assert _refusal(store, ADMIN, "GET", "older") == ""


def test_buckets_made_for_a_service_belong_to_its_owner_and_follow_its_sharing(
    store: ObjectStore,
) -> None:
    registry = ServiceRegistry(store.database, store)
    store.create_bucket("shared")
    definition = {
        "name": "gray",
        "image": "busybox",
        "script": "echo",
        "input": [{"path": "gray/in"}],
        "output": [{"path": "shared/out"}],
        "visibility": "restricted",
        "allowed_users": ["friend@issuer"],
        "owner": OWNER.user_id,
    }
    registry.create(parse_service(definition).model_copy(update={"owner": OWNER.user_id}))
    table = BucketAccessTable(store.database)
    made = table.get("gray")
    assert (made.owner, made.visibility, made.allowed_users) == (
        OWNER.user_id,
        "restricted",
        ("friend@issuer",),
    )
    assert made.service == "gray" and not made.anonymous_readable
    assert table.get("shared").owner != OWNER.user_id  # an existing bucket keeps its owner
    stored = registry.get("gray")
    assert stored is not None
    registry.update(stored.model_copy(update={"visibility": "public"}))
    assert table.get("gray").visibility == "public"
    assert not allows(table.get("gray"), None, Action.READ)  # never published by a service
    registry.delete("gray", delete_buckets=True)
    assert table.get("gray").owner != OWNER.user_id  # the record went with the bucket


def test_user_isolation_is_honoured_not_warned_about() -> None:
    definition = {"name": "iso", "image": "i", "script": "s", "isolation_level": "USER"}
    assert not [line for line in parse_service(definition).warnings if "isolation" in line]


def test_the_dashboards_storage_pages_take_the_same_decision(store: ObjectStore) -> None:
    store.create_bucket("mine")
    BucketAccessTable(store.database).claim("mine", OWNER.user_id, visibility="private")
    request: Any = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(store=store)))

    def session(who: Principal) -> Any:
        return SimpleNamespace(principal=who)

    _require_bucket(request, "mine", session(OWNER), Action.MANAGE)
    _require_bucket(request, "mine", session(ADMIN), Action.MANAGE)
    with pytest.raises(DashboardError) as refused:
        _require_bucket(request, "mine", session(STRANGER), Action.READ)
    assert refused.value.status == 403
