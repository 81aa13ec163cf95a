"""The service registry on a real state DB (SQLite and PostgreSQL) and the real object store."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oscarpy.db import Database
from oscarpy.log import redact
from oscarpy.services.errors import ServiceDefinitionError, ServiceExists, ServiceNotFound
from oscarpy.services.model import Service, parse_service
from oscarpy.services.registry import ServiceRegistry
from oscarpy.storage.store import ObjectStore


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Iterator[ObjectStore]:
    database = Database(database_url)
    database.migrate()
    yield ObjectStore(database, tmp_path / "data")
    database.close()


@pytest.fixture
def registry(store: ObjectStore) -> ServiceRegistry:
    return ServiceRegistry(store.database, store)


def service(name: str = "grayify", **overrides: Any) -> Service:
    data: dict[str, Any] = {
        "name": name,
        "image": "busybox",
        "script": "echo",
        "input": [{"path": "images/in"}],
        "output": [{"path": "images/out"}, {"path": f"{name}-results/"}],
    }
    data.update(overrides)
    return parse_service(data)


def test_create_generates_a_token_makes_buckets_and_folders(
    registry: ServiceRegistry, store: ObjectStore
) -> None:
    created = registry.create(service(token="chosen-by-client"))
    assert re.fullmatch(r"[0-9a-f]{64}", created.token)
    assert created.owner == "cluster_admin"
    assert registry.get("grayify") == created
    assert set(store.list_buckets()) == {"images", "grayify-results"}
    keys = [info.key for info in store.list_objects("images")]
    assert keys == ["in/", "out/"]
    assert list(store.list_objects("grayify-results")) == []
    assert redact(created.token) == "********"  # the token is masked in logs at once


def test_a_second_service_may_share_a_bucket(registry: ServiceRegistry, store: ObjectStore) -> None:
    registry.create(service("first"))
    registry.create(service("second", input=[{"path": "images/other"}], output=[]))
    assert [s.name for s in registry.list()] == ["first", "second"]
    assert "other/" in [info.key for info in store.list_objects("images")]


def test_duplicate_names_are_refused(registry: ServiceRegistry) -> None:
    registry.create(service())
    with pytest.raises(ServiceExists, match="already exists"):
        registry.create(service(image="other"))
    stored = registry.get("grayify")
    assert stored is not None and stored.image == "busybox"


def test_update_keeps_token_owner_and_hidden_secrets(registry: ServiceRegistry) -> None:
    created = registry.create(service(environment={"secrets": {"KEY": "s3cret-value"}}))
    shown = created.redacted().to_json()
    shown.update(image="busybox:2", token="", owner="")
    updated = registry.update(parse_service(shown))
    assert (updated.token, updated.owner, updated.image) == (
        created.token,
        "cluster_admin",
        "busybox:2",
    )
    assert updated.environment.secrets == {"KEY": "s3cret-value"}
    assert registry.get("grayify") == updated


def test_update_of_an_absent_service(registry: ServiceRegistry) -> None:
    with pytest.raises(ServiceNotFound):
        registry.update(service())


def test_delete_keeps_buckets_unless_asked(
    registry: ServiceRegistry, store: ObjectStore, tmp_path: Path
) -> None:
    registry.create(service())
    source = tmp_path / "cat.jpg"
    source.write_bytes(b"jpeg")
    store.put_file("images", "in/cat.jpg", source)
    registry.delete("grayify")
    assert registry.get("grayify") is None and registry.list() == []
    assert store.head("images", "in/cat.jpg") is not None
    with pytest.raises(ServiceNotFound):
        registry.delete("grayify")


def test_delete_buckets_spares_buckets_other_services_use(
    registry: ServiceRegistry, store: ObjectStore, tmp_path: Path
) -> None:
    registry.create(service())
    registry.create(service("reader", input=[{"path": "grayify-results/"}], output=[]))
    registry.create(service("other", input=[{"path": "images/x"}], output=[]))
    registry.delete("grayify", delete_buckets=True)
    # `images` is other's input, `grayify-results` is reader's: both stay.
    assert set(store.list_buckets()) == {"images", "grayify-results"}
    registry.delete("other", delete_buckets=True)
    assert set(store.list_buckets()) == {"grayify-results"}


def test_listeners_hear_committed_changes_and_a_failing_one_harms_nothing(
    registry: ServiceRegistry,
) -> None:
    heard: list[tuple[str, str]] = []

    def failing(event: str, changed: Service) -> None:
        raise RuntimeError("listener bug")

    registry.add_listener(failing)
    registry.add_listener(lambda event, changed: heard.append((event, changed.name)))
    registry.create(service())
    registry.update(service(image="busybox:2"))
    registry.delete("grayify")
    assert heard == [("created", "grayify"), ("updated", "grayify"), ("deleted", "grayify")]


def test_services_survive_a_new_registry(registry: ServiceRegistry, store: ObjectStore) -> None:
    created = registry.create(service(alpine=True, timeout=30, retries=2))
    again = ServiceRegistry(store.database, store).get("grayify")
    assert again == created and again is not None
    assert again.oscar_settings == {"alpine": True}
    assert (again.timeout, again.retries) == (30, 2)


def test_hidden_without_a_stored_key_is_refused(registry: ServiceRegistry) -> None:
    providers = {"s3": {"aws": {"access_key": "AK", "secret_key": "hidden"}}}
    output = [{"storage_provider": "s3.aws", "path": "results/out"}]
    with pytest.raises(ServiceDefinitionError, match=r"storage_providers\.s3\.aws\.secret_key"):
        registry.create(service(output=output, storage_providers=providers))
    registry.create(service())
    with pytest.raises(ServiceDefinitionError, match="'hidden' stands for a stored key"):
        registry.update(service(output=output, storage_providers=providers))
