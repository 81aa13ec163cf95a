"""OSCAR's clients signed in with OIDC tokens of a real provider: the official `oscar_python`
client, unchanged, and the `oscar` CLI with a refresh token."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from oscar_python.client import Client

from tests.support.cli import run_cli
from tests.support.oidc import GROUP, OidcProvider, oidc_provider, wait_until_expired
from tests.support.server import RunningServer, start_server

__all__ = ["oidc_provider"]

ALICE, BOB = "alice@example.org", "bob@example.org"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, oidc_provider: OidcProvider
) -> Iterator[RunningServer]:
    running = start_server(
        tmp_path_factory.mktemp("identity-wire") / "data",
        env={
            "OSCAR_PASSWORD": "identity-wire-password",
            "OSCAR_OIDC_ISSUERS": oidc_provider.issuer,
            "OSCAR_OIDC_GROUPS": GROUP,
        },
    )
    yield running
    running.stop()


def oidc_client(server: RunningServer, **options: object) -> Client:
    return Client({"cluster_id": "oidc", "endpoint": server.url, "ssl": "False", **options})


def test_service_lifecycle_with_an_oidc_token(
    server: RunningServer, oidc_provider: OidcProvider, tmp_path: Path
) -> None:
    client = oidc_client(server, oidc_token=oidc_provider.sign_in(ALICE).access_token)
    config = json.loads(client.get_cluster_config().text)
    assert config["config"]["oidc_groups"] == [GROUP]
    assert config["minio_provider"]["access_key"] != server.username

    service = {
        "name": "alice-python",
        "image": "oscar-test/busybox:latest",
        "script": "echo hi",
        "input": [{"storage_provider": "minio.default", "path": "alice-python/in"}],
    }
    assert client.create_service(service).status_code == 201
    assert [s["name"] for s in json.loads(client.list_services().text)] == ["alice-python"]
    read = json.loads(client.get_service("alice-python").text)
    assert read["owner"] == ALICE
    assert client.update_service("alice-python", {**service, "memory": "64Mi"}).status_code == 204

    # Files go through the user's own S3 keys, taken from /system/config by the client.
    (tmp_path / "photo.jpg").write_bytes(b"jpeg")
    storage = client.create_storage_client("alice-python")
    storage.upload_file("minio.default", str(tmp_path / "photo.jpg"), "alice-python/in")

    # Invoked with the user's token (the client sends it rather than the service's).
    job = client.run_service("alice-python", input={"hello": "world"}, async_call=True)
    assert job.status_code == 201

    # Another user sees none of it.
    bob = oidc_client(server, oidc_token=oidc_provider.sign_in(BOB).access_token)
    assert json.loads(bob.list_services().text) == []

    assert client.remove_service("alice-python").status_code == 204
    assert json.loads(client.list_services().text) == []


def test_the_client_refreshes_an_expired_token(
    server: RunningServer, oidc_provider: OidcProvider
) -> None:
    tokens = oidc_provider.sign_in(ALICE, client_id="oscar-short")
    wait_until_expired(tokens.access_token)
    client = oidc_client(
        server,
        oidc_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        token_endpoint=oidc_provider.token_endpoint,
        client_id="oscar-short",
        scopes=["openid", "offline_access", "profile"],
    )
    assert client.get_access_token() != tokens.access_token
    assert client.get_cluster_config().status_code == 200


def test_oscar_cli_with_a_refresh_token(
    server: RunningServer, oidc_provider: OidcProvider, tmp_path: Path
) -> None:
    """`oscar cluster add --oidc-refresh-token`: every command refreshes at the provider."""
    tokens = oidc_provider.sign_in(BOB)
    with httpx.Client(headers={"Authorization": f"Bearer {tokens.access_token}"}) as bob:
        created = bob.post(f"{server.url}/system/services", json=_definition("bob-cli"))
        assert created.status_code == 201, created.text
    home = tmp_path / "home"
    home.mkdir()
    added = run_cli(
        home,
        "cluster",
        "add",
        "egi",
        server.url,
        "--oidc-refresh-token",
        tokens.refresh_token,
        "--oidc-token-endpoint",
        oidc_provider.token_endpoint,
        "--oidc-client-id",
        "oscar-test",
    )
    assert added.returncode == 0, added.stderr
    config = (home / ".oscar" / "config.yaml").read_text()
    assert "oidc_refresh_token" in config and tokens.access_token not in config

    listed = run_cli(home, "service", "list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert [service["name"] for service in json.loads(listed.stdout)] == ["bob-cli"]

    removed = run_cli(home, "service", "delete", "bob-cli")
    assert removed.returncode == 0, removed.stderr

    refused = run_cli(
        home,
        "cluster",
        "add",
        "bad",
        server.url,
        "--oidc-refresh-token",
        "nonsense",
        "--oidc-token-endpoint",
        oidc_provider.token_endpoint,
        "--oidc-client-id",
        "oscar-test",
    )
    assert refused.returncode == 0
    failed = run_cli(home, "service", "list", "-c", "bad")
    assert failed.returncode != 0 and "refused the refresh token" in failed.stderr


def _definition(name: str) -> dict[str, object]:
    return {"name": name, "image": "oscar-test/busybox:latest", "script": "echo hi"}
