"""Buckets shared between users signed in by a real OpenID provider: owner, allowed user and
other user, over the REST API and S3 with each user's own key pair (and anonymously)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.inprocess import InProcessServer, in_process_server
from tests.support.oidc import GROUP, OidcProvider, oidc_provider

__all__ = ["oidc_provider"]

ALICE, BOB, DAVE = (f"{name}@example.org" for name in ("alice", "bob", "dave"))


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, oidc_provider: OidcProvider
) -> Iterator[InProcessServer]:
    data = tmp_path_factory.mktemp("bucket-users") / "data"
    with in_process_server(
        data, runtime="process", oidc_issuers=oidc_provider.issuer, oidc_groups=GROUP
    ) as running:
        yield running


@pytest.fixture(scope="module")
def users(api: InProcessServer, oidc_provider: OidcProvider) -> Iterator[dict[str, httpx.Client]]:
    clients = {}
    for user in (ALICE, BOB, DAVE):
        token = oidc_provider.sign_in(user).access_token
        clients[user] = api.client(
            authenticated=False, headers={"Authorization": f"Bearer {token}"}
        )
    yield clients
    for client in clients.values():
        client.close()


@pytest.fixture(scope="module")
def s3(users: dict[str, httpx.Client]) -> Iterator[dict[str, Any]]:
    clients = {}
    for user, client in users.items():
        keys = client.get("/system/config").json()["minio_provider"]
        clients[user] = boto3.client(
            "s3",
            endpoint_url=keys["endpoint"],
            aws_access_key_id=keys["access_key"],
            aws_secret_access_key=keys["secret_key"],
            region_name=keys["region"],
        )
    clients["anonymous"] = boto3.client(
        "s3",
        endpoint_url=keys["endpoint"],
        region_name="us-east-1",
        config=Config(signature_version=UNSIGNED),
    )
    yield clients
    for made in clients.values():
        made.close()


def code(attempt: Any) -> str:
    try:
        attempt()
    except ClientError as error:
        return str(error.response["Error"]["Code"])
    return ""


def test_owner_allowed_user_and_others_over_rest_and_s3(
    users: dict[str, httpx.Client], s3: dict[str, Any]
) -> None:
    alice, bob, dave = users[ALICE], users[BOB], users[DAVE]
    assert alice.post("/system/buckets", json={"bucket_name": "alice-data"}).status_code == 201
    s3[ALICE].put_object(Bucket="alice-data", Key="a.txt", Body=b"alice's")
    assert alice.get("/system/buckets/alice-data").json()["owner"] == ALICE
    for other in (bob, dave):
        assert other.get("/system/buckets/alice-data").status_code == 403
        assert "alice-data" not in [b["bucket_name"] for b in other.get("/system/buckets").json()]
    for stranger in (BOB, DAVE, "anonymous"):
        assert code(lambda o=stranger: s3[o].get_object(Bucket="alice-data", Key="a.txt")) == (
            "AccessDenied"
        )
    assert "alice-data" not in [b["Name"] for b in s3[BOB].list_buckets()["Buckets"]]

    shared = {"bucket_name": "alice-data", "visibility": "restricted", "allowed_users": [BOB]}
    assert bob.put("/system/buckets", json=shared).status_code == 403  # not bob's to share
    assert alice.put("/system/buckets", json=shared).status_code == 204
    assert bob.get("/system/buckets/alice-data").status_code == 200
    s3[BOB].put_object(Bucket="alice-data", Key="b.txt", Body=b"bob's")
    assert s3[BOB].get_object(Bucket="alice-data", Key="a.txt")["Body"].read() == b"alice's"
    assert code(lambda: s3[BOB].delete_bucket(Bucket="alice-data")) == "AccessDenied"
    assert code(lambda: s3[BOB].put_bucket_acl(Bucket="alice-data", ACL="public-read")) == (
        "AccessDenied"
    )
    assert code(lambda: s3[DAVE].get_object(Bucket="alice-data", Key="a.txt")) == "AccessDenied"
    presign = {"object_key": "a.txt", "operation": "download"}
    assert dave.post("/system/buckets/alice-data/presign", json=presign).status_code == 403
    url = bob.post("/system/buckets/alice-data/presign", json=presign).json()["url"]
    assert httpx.get(url).content == b"alice's"
    assert bob.delete("/system/buckets/alice-data").status_code == 403
    assert alice.delete("/system/buckets/alice-data").status_code == 204


def test_bucket_names_are_one_namespace_with_owners(s3: dict[str, Any]) -> None:
    s3[ALICE].create_bucket(Bucket="alice-made")
    assert code(lambda: s3[ALICE].create_bucket(Bucket="alice-made")) == "BucketAlreadyOwnedByYou"
    assert code(lambda: s3[BOB].create_bucket(Bucket="alice-made")) == "BucketAlreadyExists"
    s3[ALICE].put_bucket_acl(Bucket="alice-made", ACL="public-read")
    s3[ALICE].put_object(Bucket="alice-made", Key="open.txt", Body=b"open")
    for reader in (BOB, "anonymous"):
        assert s3[reader].get_object(Bucket="alice-made", Key="open.txt")["Body"].read() == b"open"
    # Public means every signed-in user may write too (OSCAR's public); anonymous callers only read.
    s3[DAVE].put_object(Bucket="alice-made", Key="dave.txt", Body=b"dave")
    assert code(lambda: s3["anonymous"].put_object(Bucket="alice-made", Key="x", Body=b"x")) == (
        "AccessDenied"
    )


def test_a_services_buckets_are_its_owners(users: dict[str, httpx.Client]) -> None:
    definition = {
        "name": "alice-svc",
        "image": "oscar-test/busybox:latest",
        "script": "echo hi",
        "input": [{"storage_provider": "minio.default", "path": "alice-svc/in"}],
        "visibility": "restricted",
        "allowed_users": [BOB],
    }
    assert users[ALICE].post("/system/services", json=definition).status_code == 201
    seen = {b["bucket_name"]: b for b in users[BOB].get("/system/buckets").json()}
    assert seen["alice-svc"]["owner"] == ALICE
    assert seen["alice-svc"]["metadata"] == {"from_service": "alice-svc"}
    assert users[DAVE].get("/system/buckets/alice-svc").status_code == 403


def test_a_browser_form_upload_acts_for_the_user_who_signed_it(
    users: dict[str, httpx.Client], s3: dict[str, Any]
) -> None:
    assert (
        users[ALICE].post("/system/buckets", json={"bucket_name": "alice-forms"}).status_code == 201
    )

    def upload(user: str) -> httpx.Response:
        post = s3[user].generate_presigned_post("alice-forms", "up/${filename}", ExpiresIn=60)
        return httpx.post(post["url"], data=post["fields"], files={"file": ("f.txt", b"form")})

    refused = upload(DAVE)
    assert refused.status_code == 403 and "AccessDenied" in refused.text
    assert upload(ALICE).status_code == 204
    assert s3[ALICE].get_object(Bucket="alice-forms", Key="up/f.txt")["Body"].read() == b"form"
