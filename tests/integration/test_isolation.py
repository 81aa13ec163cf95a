"""OSCAR's `isolation_level: USER` on a running engine: every allowed user gets a private bucket
whose uploads run the service and receive its outputs, and which only that user may read."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from oscarpy.auth.buckets import Action, BucketAccessTable, allows, isolated_bucket
from oscarpy.auth.principal import Principal
from oscarpy.engine.runtimes.process import ProcessRuntime
from tests.support.jobs import Harness, running_engine, unique

COPY_INPUT = 'cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/result"\n'
ANN = "ann0123456789abcdef@issuer"
BOB = "bob0123456789abcdef@issuer"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    data = tmp_path_factory.mktemp("isolation") / "data"
    with running_engine(data, runtime=ProcessRuntime()) as harness:
        yield harness


def test_each_allowed_user_works_in_a_private_bucket(platform: Harness) -> None:
    bucket = unique("iso")
    service = platform.service(
        script=COPY_INPUT,
        input=[{"path": f"{bucket}/in"}],
        output=[{"path": f"{bucket}/out"}],
        visibility="restricted",
        allowed_users=[ANN, BOB],
        isolation_level="USER",
    )
    assert not [line for line in service.warnings if "isolation_level" in line]
    ann_bucket, bob_bucket = isolated_bucket(bucket, ANN), isolated_bucket(bucket, BOB)
    assert ann_bucket == f"{bucket}-ann0123456"
    table = BucketAccessTable(platform.database)
    for private, owner, other in ((ann_bucket, ANN, BOB), (bob_bucket, BOB, ANN)):
        access = table.get(private)
        assert (access.owner, access.visibility, access.service) == (owner, "private", service.name)
        assert allows(access, Principal(owner), Action.WRITE)
        assert not allows(access, Principal(other), Action.READ)
        assert platform.store.head(private, "in/") is not None  # the folders are there
    # The shared bucket is still there for every allowed user.
    assert allows(table.get(bucket), Principal(BOB), Action.WRITE)

    platform.put(ann_bucket, "in/photo.txt", b"ann's")
    assert platform.object_appears(ann_bucket, "out/result") == b"ann's"
    platform.put(bucket, "in/shared.txt", b"shared")
    assert platform.object_appears(bucket, "out/result") == b"shared"
    assert platform.read(bob_bucket, "out/result") is None

    platform.registry.delete(service.name, delete_buckets=True)
    assert not platform.store.bucket_exists(ann_bucket)
