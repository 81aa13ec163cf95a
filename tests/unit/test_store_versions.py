"""Bucket versioning in the store, on SQLite and PostgreSQL: versions kept, delete markers,
removal of one version, listing with markers, and every new version an upload event."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from oscarpy.db import Database
from oscarpy.s3.listing import list_version_entries
from oscarpy.storage.errors import ObjectNotFound, VersionNotFound
from oscarpy.storage.store import ObjectStore


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Iterator[ObjectStore]:
    database = Database(database_url)
    database.migrate()
    made = ObjectStore(database, tmp_path / "data")
    made.create_bucket("vers")
    yield made
    database.close()


def read(store: ObjectStore, key: str, version: str | None) -> bytes:
    _found, handle = store.open_version("vers", key, version)
    assert handle is not None
    with handle:
        return handle.read()


def test_versions_are_kept_and_each_is_an_upload_event(store: ObjectStore) -> None:
    store.put_bytes("vers", "k", b"before versioning")  # the "null" version
    store.set_versioning("vers", "Enabled")
    first = store.put_bytes("vers", "k", b"one")
    second = store.put_bytes("vers", "k", b"one")  # same bytes, a new version all the same

    assert first.version_id and second.version_id and first.version_id != second.version_id
    assert read(store, "k", None) == b"before versioning"
    assert read(store, "k", first.version_id) == b"one"
    assert store.head("vers", "k") == second
    created = [event for event in store.events_after(0) if event.kind == "created"]
    assert len(created) == 3
    assert created[1].etag == created[2].etag
    assert created[1].occurred_at != created[2].occurred_at  # two uploads, two jobs

    listed = store.list_versions("vers")
    assert [(entry.details.version_id, entry.is_latest) for entry in listed] == [
        (second.version_id, True),
        (first.version_id, False),
        (None, False),
    ]


def test_delete_markers_and_removing_versions(store: ObjectStore) -> None:
    store.set_versioning("vers", "Enabled")
    kept = store.put_bytes("vers", "k", b"kept")
    assert store.delete_objects("vers", ["k"]) == ["k"]
    assert store.head("vers", "k") is None
    marker = store.latest_delete_marker("vers", "k")
    assert marker is not None and marker.delete_marker and marker.version_id
    with pytest.raises(ObjectNotFound):
        store.open_object("vers", "k")
    assert read(store, "k", kept.version_id) == b"kept"

    # Removing the marker makes the kept version current again.
    removed = store.delete_version("vers", "k", marker.version_id)
    assert removed is not None and removed.delete_marker
    assert store.head("vers", "k") == kept
    # Removing the current version for good leaves nothing, and frees its blob.
    store.delete_version("vers", "k", kept.version_id)
    assert store.head("vers", "k") is None and store.list_versions("vers") == []
    assert store.blobs.all_ids() == set()
    with pytest.raises(VersionNotFound):
        store.open_version("vers", "k", kept.version_id)
    assert store.recover() == 0


def test_suspended_versioning_replaces_only_the_null_version(store: ObjectStore) -> None:
    store.set_versioning("vers", "Enabled")
    versioned = store.put_bytes("vers", "k", b"versioned")
    store.set_versioning("vers", "Suspended")
    store.put_bytes("vers", "k", b"null 1")
    store.put_bytes("vers", "k", b"null 2")
    assert [entry.details.version_id for entry in store.list_versions("vers")] == [
        None,
        versioned.version_id,
    ]
    assert read(store, "k", None) == b"null 2"
    assert len(store.blobs.all_ids()) == 2  # the replaced null version's blob is gone


def test_listing_resumes_after_a_key_and_version_marker(store: ObjectStore) -> None:
    store.set_versioning("vers", "Enabled")
    made = {key: [store.put_bytes("vers", key, bytes([n])) for n in range(3)] for key in "ab"}
    everything = store.list_versions("vers")
    assert [(entry.details.key, entry.details.version_id) for entry in everything] == [
        (key, found.version_id) for key in "ab" for found in reversed(made[key])
    ]
    page = store.list_versions("vers", limit=2)
    rest = store.list_versions(
        "vers", key_marker=page[-1].details.key, version_marker=page[-1].details.version_id
    )
    assert page + rest == everything
    after_a = store.list_versions("vers", key_marker="a")
    assert [entry.details.key for entry in after_a] == ["b", "b", "b"]


def test_a_versioned_bucket_is_not_empty_while_it_holds_versions(store: ObjectStore) -> None:
    store.set_versioning("vers", "Enabled")
    store.put_bytes("vers", "k", b"x")
    store.delete_objects("vers", ["k"])
    from oscarpy.storage.errors import BucketNotEmpty

    with pytest.raises(BucketNotEmpty):
        store.delete_bucket("vers")
    store.delete_bucket("vers", force=True)
    assert store.blobs.all_ids() == set()


def _pages(store: ObjectStore, prefix: str, page: int) -> list[str]:
    """Every entry of a versioned listing by "/", page by page as a client resumes it."""
    seen: list[str] = []
    key_marker, version_marker = "", None
    for _ in range(50):
        listing = list_version_entries(
            store,
            "vers",
            prefix=prefix,
            delimiter="/",
            key_marker=key_marker,
            version_marker=version_marker,
            max_keys=page,
        )
        assert len(listing.entries) <= page
        for entry in listing.entries:
            if isinstance(entry, str):
                seen.append(entry)
                key_marker, version_marker = entry, None
            else:
                seen.append(f"{entry.details.key}@{entry.details.version_id}")
                key_marker, version_marker = entry.details.key, entry.details.version_id or ""
        if not listing.truncated:
            return seen
    raise AssertionError("the listing does not end")


def test_versions_listed_by_delimiter_roll_up_into_common_prefixes(store: ObjectStore) -> None:
    store.put_bytes("vers", "b", b"null")  # written before versioning: the null version
    store.set_versioning("vers", "Enabled")
    for key in ("a/1", "a/2", "a/2", "c/x/1", "c/y", "c/y"):
        store.put_bytes("vers", key, b"x")
    newer_b = store.put_bytes("vers", "b", b"new").version_id
    store.put_bytes("vers", "d", b"gone")
    store.delete_objects("vers", ["d"])
    d_marker, d_version = [entry.details.version_id for entry in store.list_versions("vers")][-2:]
    expected = ["a/", f"b@{newer_b}", "b@None", "c/", f"d@{d_marker}", f"d@{d_version}"]
    for page in (1, 2, 3, 1000):
        assert _pages(store, "", page) == expected
    c_versions = [
        f"c/y@{entry.details.version_id}" for entry in store.list_versions("vers", prefix="c/y")
    ]
    for page in (1, 2, 1000):
        assert _pages(store, "c/", page) == ["c/x/", *c_versions]
