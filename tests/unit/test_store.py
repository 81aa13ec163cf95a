"""The embedded object store on both state DBs: blobs, metadata and events move together."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oscarpy.db import Database
from oscarpy.storage.errors import (
    BucketNotEmpty,
    BucketNotFound,
    InvalidBucketName,
    InvalidObjectKey,
    InvalidPart,
    InvalidPartOrder,
    ObjectNotFound,
    PartTooSmall,
    UploadNotFound,
)
from oscarpy.storage.events import prune_events
from oscarpy.storage.providers.embedded import EmbeddedProvider
from oscarpy.storage.store import MIN_PART_SIZE, ObjectStore, multipart_etag


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Iterator[ObjectStore]:
    database = Database(database_url)
    database.migrate()
    yield ObjectStore(database, tmp_path / "data")
    database.close()


def blob_files(store: ObjectStore) -> set[str]:
    return store.blobs.all_ids()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_put_file_round_trips_content_and_metadata(store: ObjectStore, tmp_path: Path) -> None:
    assert store.create_bucket("photos") is True
    assert store.create_bucket("photos") is False
    source = write(tmp_path / "cat.jpg", b"meow" * 1000)
    info = store.put_file(
        "photos", "in/cat.jpg", source, content_type="image/jpeg", metadata={"owner": "ana"}
    )
    assert info.etag == hashlib.md5(b"meow" * 1000).hexdigest()
    found = store.head("photos", "in/cat.jpg")
    assert found is not None
    assert (found.size, found.content_type, found.metadata) == (
        4000,
        "image/jpeg",
        {"owner": "ana"},
    )
    assert store.blob_path("photos", "in/cat.jpg").read_bytes() == b"meow" * 1000
    assert store.head("photos", "missing") is None
    with pytest.raises(ObjectNotFound):
        store.blob_path("photos", "missing")
    assert store.counts() == (1, 1)


KEYS = [
    "../../etc/passwd",
    "a//b",
    "/leading",
    "dir/./x/../y",
    "ünïcødé/日本語/файл.txt",
    "k" * 1024,
    "é" * 512,  # 1024 bytes in UTF-8
]


def test_keys_are_data_never_paths(store: ObjectStore, tmp_path: Path) -> None:
    store.create_bucket("bkt")
    for number, key in enumerate(KEYS):
        store.put_file("bkt", key, write(tmp_path / "f", str(number).encode()))
    for number, key in enumerate(KEYS):
        assert store.blob_path("bkt", key).read_bytes() == str(number).encode()
    assert sorted(found.key for found in store.list_objects("bkt")) == sorted(KEYS)
    data_dir = tmp_path / "data"
    assert {entry.name for entry in data_dir.iterdir()} == {"blobs"}
    for path in data_dir.rglob("*"):
        assert path.resolve().is_relative_to(data_dir.resolve())
        assert "passwd" not in path.name and "leading" not in path.name
    assert not (tmp_path / "etc").exists()
    for bad in ["", "k" * 1025, "é" * 513, "nul\x00byte"]:
        with pytest.raises(InvalidObjectKey):
            store.put_file("bkt", bad, tmp_path / "f")
    assert len(blob_files(store)) == len(KEYS)


def test_bucket_names_follow_s3_rules(store: ObjectStore) -> None:
    for bad in [
        "ab",
        "UPPER",
        "-start",
        "end-",
        "a" * 64,
        "a..b",
        "192.168.1.1",
        "under_score",
        "trailing-newline\n",
    ]:
        with pytest.raises(InvalidBucketName):
            store.create_bucket(bad)
    store.create_bucket("a.b-c1")
    assert store.list_buckets() == ["a.b-c1"]


def test_every_change_is_recorded_as_an_event(store: ObjectStore, tmp_path: Path) -> None:
    woken: list[int] = []
    store.add_commit_listener(lambda: woken.append(1))
    store.create_bucket("events")
    store.put_file("events", "a.txt", write(tmp_path / "a", b"one"))
    store.put_file("events", "a.txt", write(tmp_path / "a", b"two!"))
    assert store.delete_object("events", "a.txt") is True
    assert store.delete_object("events", "a.txt") is False
    events = store.events_after(0)
    assert [(event.kind, event.key, event.size) for event in events] == [
        ("created", "a.txt", 3),
        ("created", "a.txt", 4),
        ("deleted", "a.txt", 4),
    ]
    assert events[1].etag == hashlib.md5(b"two!").hexdigest()
    assert [event.id for event in events] == sorted(event.id for event in events)
    assert len(woken) == 3
    assert [event.id for event in store.events_after(events[1].id)] == [events[2].id]
    with store.database.session() as session:
        assert prune_events(session, events[1].id) == 2
    assert [event.id for event in store.events_after(0)] == [events[2].id]
    assert blob_files(store) == set()  # replaced and deleted blobs are gone


def test_a_failed_commit_leaves_nothing(store: ObjectStore, tmp_path: Path) -> None:
    woken: list[int] = []
    store.add_commit_listener(lambda: woken.append(1))
    with pytest.raises(BucketNotFound):
        store.put_file("nowhere", "x", write(tmp_path / "x", b"data"))
    assert blob_files(store) == set()
    assert list(store.blobs.incoming.iterdir()) == []
    assert store.events_after(0) == []
    assert woken == []


def test_listing_is_byte_ordered_and_prefix_is_case_sensitive(
    store: ObjectStore, tmp_path: Path
) -> None:
    store.create_bucket("list")
    keys = ["a/1", "a/2", "A/3", "b", "a_x", "a%y", "ab"]
    for key in keys:
        store.put_file("list", key, write(tmp_path / "f", b"."))
    assert [found.key for found in store.list_objects("list")] == sorted(
        keys, key=lambda key: key.encode()
    )
    assert [found.key for found in store.list_objects("list", "a/")] == ["a/1", "a/2"]
    assert [found.key for found in store.list_objects("list", "a_")] == ["a_x"]
    assert [found.key for found in store.list_objects("list", "a%")] == ["a%y"]
    page = store.list_page("list", after="a/2", limit=2)
    assert [found.key for found in page] == ["a_x", "ab"]


def test_delete_bucket_refuses_when_not_empty_unless_forced(
    store: ObjectStore, tmp_path: Path
) -> None:
    store.create_bucket("full")
    store.put_file("full", "x", write(tmp_path / "x", b"x"))
    upload = store.create_upload("full", "big")
    writer = store.writer()
    writer.write(b"part")
    store.commit_part("full", "big", upload, 1, writer.finish())
    with pytest.raises(BucketNotEmpty):
        store.delete_bucket("full")
    store.delete_bucket("full", force=True)
    assert not store.bucket_exists("full")
    assert blob_files(store) == set()
    assert [event.kind for event in store.events_after(0)] == ["created", "deleted"]
    with pytest.raises(BucketNotFound):
        store.delete_bucket("full")


def test_ensure_folder_creates_a_marker_once_without_event(store: ObjectStore) -> None:
    store.ensure_bucket("svc")
    store.ensure_folder("svc", "/input/")
    store.ensure_folder("svc", "input")
    store.ensure_folder("svc", "")
    assert [(found.key, found.size) for found in store.list_objects("svc")] == [("input/", 0)]
    assert store.events_after(0) == []


def test_multipart_upload_joins_parts_with_the_s3_etag(store: ObjectStore) -> None:
    store.create_bucket("multi")
    upload = store.create_upload("multi", "joined", content_type="text/plain", metadata={"k": "v"})
    chunks = [os.urandom(MIN_PART_SIZE), os.urandom(MIN_PART_SIZE), b"tail"]
    etags = []
    for number, chunk in enumerate(chunks, start=1):
        writer = store.writer()
        writer.write(chunk)
        etags.append(store.commit_part("multi", "joined", upload, number, writer.finish()))
    # Re-sending a part replaces it (and its blob).
    writer = store.writer()
    writer.write(b"tail")
    store.commit_part("multi", "joined", upload, 3, writer.finish())
    assert [part.part_number for part in store.list_parts(upload)] == [1, 2, 3]
    assert [item.upload_id for item in store.list_uploads("multi")] == [upload]
    with pytest.raises(InvalidPartOrder):
        store.complete_upload("multi", "joined", upload, [(2, etags[1]), (1, etags[0])])
    with pytest.raises(InvalidPart):
        store.complete_upload("multi", "joined", upload, [(1, etags[0]), (2, "0" * 32)])
    with pytest.raises(PartTooSmall):
        store.complete_upload("multi", "joined", upload, [(3, etags[2]), (4, etags[2])])
    done = store.complete_upload(
        "multi", "joined", upload, [(number, f'"{etag}"') for number, etag in enumerate(etags, 1)]
    )
    assert done.etag == multipart_etag(etags) and done.etag.endswith("-3")
    assert (done.content_type, done.metadata) == ("text/plain", {"k": "v"})
    assert store.blob_path("multi", "joined").read_bytes() == b"".join(chunks)
    assert store.list_uploads("multi") == []
    assert len(blob_files(store)) == 1  # the parts are gone
    with pytest.raises(UploadNotFound):
        store.complete_upload("multi", "joined", upload, [(1, etags[0])])
    aborted = store.create_upload("multi", "gone")
    store.abort_upload("multi", "gone", aborted)
    with pytest.raises(UploadNotFound):
        store.get_upload("multi", "gone", aborted)


def test_copy_object_copies_or_replaces_metadata(store: ObjectStore, tmp_path: Path) -> None:
    store.create_bucket("src")
    store.create_bucket("dst")
    store.put_file("src", "a", write(tmp_path / "a", b"abc"), "text/plain", {"m": "1"})
    kept = store.copy_object("src", "a", "dst", "b")
    assert (kept.content_type, kept.metadata, kept.size) == ("text/plain", {"m": "1"}, 3)
    replaced = store.copy_object("src", "a", "dst", "c", replace=("image/png", {"n": "2"}, {}))
    assert (replaced.content_type, replaced.metadata) == ("image/png", {"n": "2"})
    assert store.blob_path("dst", "c").read_bytes() == b"abc"
    assert [event.key for event in store.events_after(0)] == ["a", "b", "c"]


def test_concurrent_writers_of_one_key_leave_one_blob(store: ObjectStore, tmp_path: Path) -> None:
    store.create_bucket("race")
    errors: list[BaseException] = []

    def put(worker: int) -> None:
        source = write(tmp_path / f"w{worker}", f"worker {worker}".encode())
        try:
            for _ in range(10):
                store.put_file("race", "same", source)
                store.put_file("race", f"own-{worker}", source)
        except BaseException as error:  # collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=put, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(store.events_after(0)) == 80
    assert len(blob_files(store)) == 5  # "same" once, each "own-N" once: no orphans


def test_a_batched_write_reads_back_as_one_made_through_a_session(
    store: ObjectStore, tmp_path: Path
) -> None:
    """On SQLite object writes are group-committed on the driver's own connection, on
    PostgreSQL through SQLAlchemy; either way what SQLAlchemy reads back (JSON metadata, the
    time zone, the event row) is exactly what the write returned."""
    store.create_bucket("paths")
    source = write(tmp_path / "source", "données".encode())
    settings: dict[str, Any] = {
        "content_type": "text/plain; charset=utf-8",
        "metadata": {"owner": "ana", "note": "élan ✓"},
        "headers": {"Cache-Control": "no-cache"},
    }
    grouped = store.commit_object("paths", "grouped", store.blobs.writer().finish(), **settings)
    writer = store.writer()
    writer.write(source.read_bytes())
    replaced = store.commit_object("paths", "grouped", writer.finish(), **settings)
    found = store.head("paths", "grouped")
    assert found == replaced
    assert found is not None and found.last_modified.tzinfo is not None
    assert (found.metadata, found.headers) == (settings["metadata"], settings["headers"])
    events = store.events_after(0)
    assert [(event.key, event.size, event.etag) for event in events] == [
        ("grouped", 0, grouped.etag),
        ("grouped", len("données".encode()), replaced.etag),
    ]
    assert blob_files(store) == {found.blob_id}  # the replaced empty blob is gone
    with pytest.raises(BucketNotFound):
        store.commit_object("nowhere", "x", store.blobs.writer().finish())
    assert blob_files(store) == {found.blob_id}


def test_recover_removes_half_written_and_unreferenced_blobs(
    store: ObjectStore, tmp_path: Path
) -> None:
    store.create_bucket("keep")
    store.put_file("keep", "kept", write(tmp_path / "k", b"kept"))
    half = store.writer()
    half.write(b"interrupted")  # never finished: as if the server died mid-upload
    orphan = store.writer()
    orphan.write(b"renamed but never committed")
    orphan.finish()
    assert store.recover() == 2
    assert list(store.blobs.incoming.iterdir()) == []
    assert store.blob_path("keep", "kept").read_bytes() == b"kept"
    assert len(blob_files(store)) == 1
    half.abort()  # closes the handle the "dead" writer still held


def test_embedded_provider_stages_by_copy(store: ObjectStore, tmp_path: Path) -> None:
    provider = EmbeddedProvider(store)
    provider.ensure_bucket("stage")
    provider.ensure_bucket("stage")
    uploaded = provider.upload("stage", "out/r.txt", write(tmp_path / "r", b"result"), "text/plain")
    assert uploaded.size == 6
    target = tmp_path / "in" / "r.txt"
    target.parent.mkdir()
    downloaded = provider.download("stage", "out/r.txt", target)
    assert downloaded == uploaded
    target.write_bytes(b"changed by a script")  # must not change the stored object
    assert store.blob_path("stage", "out/r.txt").read_bytes() == b"result"
    assert [found.key for found in provider.list_objects("stage", "out/")] == ["out/r.txt"]
    with pytest.raises(ObjectNotFound):
        provider.download("stage", "missing", tmp_path / "m")
    with pytest.raises(ObjectNotFound):
        provider.download("no-such-bucket", "x", tmp_path / "m")
