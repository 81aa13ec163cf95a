"""Users signed in by a real OpenID provider: who may do what, over REST and S3.

The provider is npm `oidc-provider` (tests/support/oidc.py); every token below is its own.
alice owns three services (private, restricted to bob, public); carol is an admin by
OSCAR_OIDC_ADMIN_USERS; dave is another user; mallory is in no allowed group.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from oscarpy.auth.oidc import OidcVerifier
from tests.support.inprocess import InProcessServer, in_process_server
from tests.support.oidc import GROUP, OidcProvider, oidc_provider, wait_until_expired

__all__ = ["oidc_provider"]

ALICE, BOB, CAROL, DAVE, MALLORY = (
    f"{name}@example.org" for name in ("alice", "bob", "carol", "dave", "mallory")
)


def definition(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": "oscar-test/busybox:latest",
        "script": "echo hi",
        "input": [{"storage_provider": "minio.default", "path": f"{name}/in"}],
        **extra,
    }


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, oidc_provider: OidcProvider
) -> Iterator[InProcessServer]:
    data = tmp_path_factory.mktemp("identity") / "data"
    with in_process_server(
        data,
        password="identity-admin-password",
        oidc_issuers=oidc_provider.issuer,
        oidc_groups=GROUP,
        oidc_admin_users=CAROL,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def tokens(oidc_provider: OidcProvider) -> dict[str, str]:
    return {user: oidc_provider.sign_in(user).access_token for user in (ALICE, BOB, CAROL, DAVE)}


def as_user(api: InProcessServer, token: str) -> httpx.Client:
    return api.client(authenticated=False, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture(scope="module")
def services(api: InProcessServer, tokens: dict[str, str]) -> dict[str, str]:
    with as_user(api, tokens[ALICE]) as alice:
        for name, extra in SHARING.items():
            created = alice.post("/system/services", json=definition(name, **extra))
            assert created.status_code == 201, created.text
            assert created.json()["owner"] == ALICE
    return {"private": "alice-private", "restricted": "alice-restricted", "public": "alice-public"}


SHARING: dict[str, dict[str, Any]] = {
    "alice-private": {},
    "alice-restricted": {"visibility": "restricted", "allowed_users": [BOB]},
    "alice-public": {"visibility": "public"},
}
# Who may read and invoke each service: OSCAR's visibility rules.
MAY_USE = {
    "private": {"admin", ALICE, CAROL},
    "restricted": {"admin", ALICE, CAROL, BOB},
    "public": {"admin", ALICE, CAROL, BOB, DAVE},
}
MAY_CHANGE = {"admin", ALICE, CAROL}


def callers(api: InProcessServer, tokens: dict[str, str]) -> dict[str, httpx.Client]:
    clients = {user: as_user(api, token) for user, token in tokens.items()}
    clients["admin"] = api.client()
    return clients


def test_route_by_identity_matrix(
    api: InProcessServer, tokens: dict[str, str], services: dict[str, str]
) -> None:
    for who, client in callers(api, tokens).items():
        with client:
            listed = {service["name"] for service in client.get("/system/services").json()}
            expected = {services[kind] for kind, users in MAY_USE.items() if who in users}
            assert listed & set(services.values()) == expected, who
            for kind, name in services.items():
                may_use = who in MAY_USE[kind]
                may_change = who in MAY_CHANGE
                read = client.get(f"/system/services/{name}")
                assert read.status_code == (200 if may_use else 403), (who, name, read.text)
                if may_use:
                    # The token opens the service: only those who may change it see it.
                    assert bool(read.json()["token"]) == may_change, (who, name)
                job = client.post(f"/job/{name}", json={"hello": who})
                assert job.status_code == (201 if may_use else 403), (who, name, job.text)
                logs = client.get(f"/system/logs/{name}")
                assert logs.status_code == (200 if may_change else 403), (who, name)
                # Exposed services' lifecycle routes: past the access check, these services
                # are not exposed (400); before it, 403.
                status = client.get(f"/system/services/{name}/deployment")
                assert status.status_code == (400 if may_use else 403), (who, name, status.text)
                stop = client.post(f"/system/services/{name}/stop")
                assert stop.status_code == (400 if may_change else 403), (who, name, stop.text)
                update = client.put(
                    "/system/services", json=definition(name, memory="64Mi", **SHARING[name])
                )
                if may_change:
                    assert update.status_code in (200, 204), (who, name, update.text)
                else:
                    assert update.status_code == 403, (who, name, update.text)
                    assert f"may not change the service {name!r}" in update.text
            # Only admins read the request log of every service.
            assert client.get("/system/logs").status_code == (
                200 if who in MAY_CHANGE and who != ALICE else 403
            )

    # Changes kept the owner: alice's services are still alice's, not the last updater's.
    with api.client() as admin:
        for name in services.values():
            assert admin.get(f"/system/services/{name}").json()["owner"] == ALICE


def test_others_may_not_delete_and_the_owner_may(
    api: InProcessServer, tokens: dict[str, str]
) -> None:
    with as_user(api, tokens[ALICE]) as alice, as_user(api, tokens[BOB]) as bob:
        assert (
            alice.post(
                "/system/services", json=definition("alice-doomed", visibility="public")
            ).status_code
            == 201
        )
        refused = bob.delete("/system/services/alice-doomed")
        assert refused.status_code == 403
        assert alice.get("/system/services/alice-doomed").status_code == 200
        assert alice.delete("/system/services/alice-doomed").status_code == 204
        assert alice.get("/system/services/alice-doomed").status_code == 404


def test_bad_tokens_are_refused_with_the_reason(
    api: InProcessServer, oidc_provider: OidcProvider, services: dict[str, str]
) -> None:
    public = services["public"]
    untrusted = OidcProvider.start({ALICE: {"name": "Alice", "eduperson_entitlement": []}})
    try:
        foreign = untrusted.sign_in(ALICE).access_token
    finally:
        untrusted.stop()
    short = oidc_provider.sign_in(ALICE, client_id="oscar-short").access_token
    outsider = oidc_provider.sign_in(MALLORY).access_token
    wait_until_expired(short)
    api.platform.api_app.state.oidc.leeway = 0  # type: ignore[attr-defined]
    cases = {
        "anonymous": (None, 401, "Invalid or missing credentials"),
        "expired": (short, 401, "expired"),
        "untrusted issuer": (foreign, 401, "is not a trusted issuer"),
        "not a token": ("not-a-token", 401, "neither a valid JWT nor known"),
        "missing group": (outsider, 403, f"not in any group allowed on this platform ({GROUP})"),
    }
    for label, (token, status, reason) in cases.items():
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with api.client(authenticated=False, headers=headers) as client:
            for method, path in (
                ("GET", "/system/services"),
                ("GET", "/system/config"),
                ("GET", f"/system/services/{public}"),
                ("POST", f"/job/{public}"),
                ("POST", f"/run/{public}"),
            ):
                answer = client.request(method, path, json={})
                assert answer.status_code == status, (label, method, path, answer.text)
                assert reason in answer.text, (label, answer.text)


def test_opaque_tokens_are_asked_about_at_userinfo(
    api: InProcessServer, oidc_provider: OidcProvider, services: dict[str, str]
) -> None:
    opaque = oidc_provider.sign_in(BOB, client_id="oscar-opaque").access_token
    assert opaque.count(".") != 2  # not a JWT
    with as_user(api, opaque) as bob:
        listed = {service["name"] for service in bob.get("/system/services").json()}
        assert {"alice-restricted", "alice-public"} <= listed
        assert "alice-private" not in listed


def test_each_user_gets_their_own_s3_keys_and_may_rotate_them(
    api: InProcessServer, tokens: dict[str, str]
) -> None:
    configs = {}
    for user in (ALICE, BOB):
        with as_user(api, tokens[user]) as client:
            answer = client.get("/system/config")
            assert answer.status_code == 200
            configs[user] = answer.json()
    alice, bob = configs[ALICE]["minio_provider"], configs[BOB]["minio_provider"]
    assert configs[ALICE]["config"]["oidc_groups"] == [GROUP]
    assert alice["access_key"] != bob["access_key"] and alice["secret_key"] != bob["secret_key"]
    assert api.password not in (alice["secret_key"], bob["secret_key"])
    assert alice["secret_key"] not in api.log()

    def s3(provider: dict[str, Any]) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=provider["endpoint"],
            aws_access_key_id=provider["access_key"],
            aws_secret_access_key=provider["secret_key"],
            region_name=provider["region"],
        )

    # Signed with a user's own pair, the S3 edge knows the signer (access checks: buckets.md).
    s3(alice).list_buckets()
    wrong = dict(alice, secret_key=bob["secret_key"])
    with pytest.raises(ClientError, match="SignatureDoesNotMatch"):
        s3(wrong).list_buckets()

    with as_user(api, tokens[ALICE]) as client:
        rotated = client.post("/system/config/keys")
        assert rotated.status_code == 200
        fresh = rotated.json()
        assert fresh["access_key"] != alice["access_key"]
        assert client.get("/system/config").json()["minio_provider"] == fresh
    s3(fresh).list_buckets()
    with pytest.raises(ClientError, match="InvalidAccessKeyId"):
        s3(alice).list_buckets()
    # The admin's pair is the admin password: rotated with OSCAR_PASSWORD, not here.
    with api.client() as admin:
        assert admin.post("/system/config/keys").status_code == 409
        assert admin.get("/system/config").json()["minio_provider"]["access_key"] == api.username


def test_verifier_caches_keys_and_identities(oidc_provider: OidcProvider) -> None:
    """One discovery document and key set per issuer; a token's identity is not re-checked."""
    requests: list[str] = []
    http = httpx.Client(
        event_hooks={"request": [lambda request: requests.append(request.url.path)]}
    )
    verifier = OidcVerifier([oidc_provider.issuer], required_groups=[GROUP], http=http)
    first, second = (oidc_provider.sign_in(user).access_token for user in (ALICE, BOB))
    for _ in range(3):
        assert verifier.identify(first).subject == ALICE
        assert verifier.identify(second).subject == BOB
    assert requests == ["/.well-known/openid-configuration", "/jwks"]
    http.close()


def test_refresh_token_gives_a_working_access_token(
    api: InProcessServer, oidc_provider: OidcProvider
) -> None:
    tokens = oidc_provider.sign_in(DAVE)
    assert tokens.refresh_token
    refreshed = oidc_provider.refresh(tokens.refresh_token)
    assert refreshed.access_token != tokens.access_token
    with as_user(api, refreshed.access_token) as dave:
        assert dave.get("/system/config").status_code == 200


def test_provider_credentials_are_shown_to_the_owner_and_admins_only(
    api: InProcessServer, tokens: dict[str, str]
) -> None:
    providers = {
        "minio": {"far": {"endpoint": "http://127.0.0.1:9", "access_key": "AK-far"}},
        "webdav": {"dav": {"hostname": "dav.example.org", "login": "me"}},
    }
    providers["minio"]["far"]["secret_key"] = "far-secret-key-5150"
    providers["webdav"]["dav"]["password"] = "dav-password-8086"
    with as_user(api, tokens[ALICE]) as alice:
        created = alice.post(
            "/system/services",
            json=definition(
                "alice-shared-storage",
                visibility="public",
                output=[{"storage_provider": "webdav.dav", "path": "top/out"}],
                storage_providers=providers,
            ),
        )
        assert created.status_code == 201, created.text
        assert created.json()["storage_providers"]["webdav"]["dav"]["password"] == (
            "dav-password-8086"
        )

    for who, client in callers(api, tokens).items():
        with client:
            shown = client.get("/system/services/alice-shared-storage").json()
            listed = client.get("/system/services").text
        far, dav = shown["storage_providers"]["minio"]["far"], shown["storage_providers"]["webdav"]
        if who in MAY_CHANGE:
            assert far["secret_key"] == "far-secret-key-5150", who
            assert dav["dav"]["password"] == "dav-password-8086", who
        else:  # a user the service is shared with invokes it, but does not get its storage
            assert far["secret_key"] == "hidden" and dav["dav"]["password"] == "hidden", who
            assert "far-secret-key-5150" not in listed and "dav-password-8086" not in listed
        assert far["access_key"] == "AK-far", who
    log = api.log()
    assert "far-secret-key-5150" not in log and "dav-password-8086" not in log
