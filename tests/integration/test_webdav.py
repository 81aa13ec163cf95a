"""WebDAV (dCache) storage, `webdav.<id>`: jobs read their input from and write their outputs to a
real WebDAV server on loopback (WsgiDAV), with Basic-auth credentials that never reach a log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from oscarpy.engine.records import JobStatus
from oscarpy.storage.providers.base import ObjectNotFound, StorageError
from oscarpy.storage.providers.webdav import WebdavProvider
from tests.support.jobs import Harness, running_engine, unique
from tests.support.webdav import LOGIN, PASSWORD, WebdavServer, webdav_server

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def dav(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebdavServer]:
    with webdav_server(tmp_path_factory.mktemp("dav")) as server:
        yield server


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, docker_client: object) -> Iterator[Harness]:
    with running_engine(tmp_path_factory.mktemp("webdav") / "data") as harness:
        yield harness


def put_on(dav: WebdavServer, path: str, data: bytes) -> None:
    target = dav.root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def test_a_job_reads_its_input_from_webdav_and_writes_outputs_into_new_folders(
    platform: Harness, dav: WebdavServer
) -> None:
    top = unique("Top")  # any folder name: WebDAV has no bucket-name rules
    put_on(dav, f"{top}/in/my data.txt", b"from dcache\n")
    service = platform.service(
        script='tr a-z A-Z < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/result.txt"\n'
        'echo "input was $STORAGE_OBJECT_KEY"\n',
        storage_providers={"webdav": {"dcache": dav.provider()}},
        input=[{"storage_provider": "webdav.dcache", "path": f"{top}/in"}],
        output=[{"storage_provider": "webdav.dcache", "path": f"{top}/out/deep/er"}],
    )

    created = platform.client.post(f"/system/services/{service.name}/reconcile")

    assert created.json() == {"created": 1}
    (job,) = platform.finished_jobs(service.name)
    assert job.status is JobStatus.SUCCEEDED, job.message
    assert (job.provider, job.bucket, job.key) == ("webdav.dcache", top, "in/my data.txt")
    assert (dav.root / top / "out/deep/er/result.txt").read_bytes() == b"FROM DCACHE\n"
    log = platform.engine.ledger.read_log(job.id)
    assert "input was in/my data.txt" in log and "webdav.dcache" in log
    assert PASSWORD not in log
    # The same file is not run twice by a second pass; a new file is.
    put_on(dav, f"{top}/in/second.txt", b"two\n")
    assert platform.client.post(f"/system/services/{service.name}/reconcile").json() == {
        "created": 1
    }


def test_an_event_sent_to_job_names_a_file_on_webdav(platform: Harness, dav: WebdavServer) -> None:
    top = unique("evt")
    put_on(dav, f"{top}/in/x.txt", b"event bytes")
    service = platform.service(
        script='wc -c < "$INPUT_FILE_PATH" | tr -d " " > "$TMP_OUTPUT_DIR/size"\n',
        storage_providers={"webdav": {"d": dav.provider()}},
        input=[{"storage_provider": "webdav.d", "path": f"{top}/in"}],
        output=[{"storage_provider": "webdav.d", "path": f"{top}/out"}],
    )
    event = {"Records": [{"s3": {"bucket": {"name": top}, "object": {"key": "in/x.txt"}}}]}

    answer = platform.client.post(f"/job/{service.name}", json=event)

    assert answer.status_code == 201
    (job,) = platform.finished_jobs(service.name)
    assert job.status is JobStatus.SUCCEEDED, job.message
    assert (dav.root / top / "out/size").read_text().strip() == "11"


def test_a_wrong_password_fails_the_job_as_staging_without_logging_it(
    platform: Harness, dav: WebdavServer
) -> None:
    wrong = "not-the-dav-password-77"
    top = unique("deny")
    put_on(dav, f"{top}/in/x", b"x")
    service = platform.service(
        script="true\n",
        storage_providers={"webdav": {"d": dav.provider(password=wrong)}},
        input=[{"storage_provider": "webdav.d", "path": f"{top}/in"}],
    )
    event = {"Records": [{"s3": {"bucket": {"name": top}, "object": {"key": "in/x"}}}]}

    assert platform.client.post(f"/job/{service.name}", json=event).status_code == 201

    (job,) = platform.finished_jobs(service.name, timeout=60)
    assert job.status is JobStatus.FAILED and job.reason == "staging"
    log = platform.engine.ledger.read_log(job.id)
    assert "access denied (401)" in log
    assert wrong not in log and wrong not in (job.message or "")


def test_the_provider_lists_downloads_and_reports_missing_files(
    dav: WebdavServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    provider = WebdavProvider(hostname=dav.url, login=LOGIN, password=PASSWORD, name="webdav.t")
    request.addfinalizer(provider.close)
    top = unique("prov")
    source = tmp_path / "src"
    source.write_bytes(b"0123456789")
    provider.ensure_bucket(top)
    provider.ensure_bucket(top)  # an existing folder is fine
    for key in ("a/1.txt", "a/b/2 two.txt", "a/b/c/3.txt", "z.txt", "ab.txt"):
        stored = provider.upload(top, key, source)
        assert stored.size == 10 and stored.etag

    assert [found.key for found in provider.list_objects(top)] == [
        "a/1.txt",
        "a/b/2 two.txt",
        "a/b/c/3.txt",
        "ab.txt",
        "z.txt",
    ]
    assert [found.key for found in provider.list_objects(top, "a/b/")] == [
        "a/b/2 two.txt",
        "a/b/c/3.txt",
    ]
    assert [found.key for found in provider.list_objects(top, "a")] == [
        "a/1.txt",
        "a/b/2 two.txt",
        "a/b/c/3.txt",
        "ab.txt",
    ]
    (listed,) = list(provider.list_objects(top, "z"))
    assert listed.size == 10 and listed.last_modified is not None
    got = provider.download(top, "a/b/2 two.txt", tmp_path / "got")
    assert (tmp_path / "got").read_bytes() == b"0123456789" and got.size == 10
    assert list(provider.list_objects(unique("absent"))) == []
    with pytest.raises(ObjectNotFound):
        provider.download(top, "missing", tmp_path / "never")
    assert not (tmp_path / "never").exists()
    wrong = WebdavProvider(hostname=dav.url, login=LOGIN, password="wrong-password-1")
    request.addfinalizer(wrong.close)
    with pytest.raises(StorageError, match="access denied"):
        list(wrong.list_objects(top))
