"""The polling watcher (`OSCAR_STORAGE_WATCH_INTERVAL`): files put on an external S3 endpoint
that sends no notifications start jobs by themselves, once per content, also across restarts.

The "external" endpoint is the platform's own S3 front-end over HTTP, seen by the service only
as `minio.outside` (boto3 lists and downloads through it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from oscarpy.engine.records import JobStatus
from oscarpy.services.model import parse_service
from tests.integration.test_jobs_external import outside
from tests.support.jobs import running_engine, unique

pytestmark = pytest.mark.docker


def test_new_files_on_an_external_provider_start_jobs_without_a_call(
    tmp_path: Path, docker_client: object
) -> None:
    data = tmp_path / "data"
    bucket = unique("watch")
    with running_engine(data, storage_watch_interval=0.2) as platform:
        service = platform.service(
            script='cat "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/seen.txt"\n',
            storage_providers=outside(platform),
            input=[{"storage_provider": "minio.outside", "path": f"{bucket}/in"}],
            output=[{"storage_provider": "minio.outside", "path": f"{bucket}/out"}],
        )
        # The embedded store would start the job itself; here it must not know the input is
        # its own: the service reads it through S3 as external storage.
        assert not service.uses_embedded_store(service.input[0])
        platform.put(bucket, "in/one.txt", b"first")

        (job,) = platform.finished_jobs(service.name)
        assert job.status is JobStatus.SUCCEEDED, job.message
        assert platform.read(bucket, "out/seen.txt") == b"first"
        platform.put(bucket, "in/one.txt", b"changed")  # new content at the same key
        platform.finished_jobs(service.name, count=2)
        assert platform.read(bucket, "out/seen.txt") == b"changed"
        platform.wait_for(lambda: platform.engine.watcher.poll(service) == 0, what="no new job")
        assert len(platform.jobs(service.name)) == 2

    with running_engine(data, storage_watch_interval=0.2) as restarted:
        # The "external" endpoint moved with the restart (a new port): point the service at it.
        moved = {**service.to_json(), "storage_providers": outside(restarted)}
        service = restarted.registry.update(parse_service(moved))
        # What was run before the restart is not run again; what came meanwhile is.
        restarted.put(bucket, "in/two.txt", b"second")
        restarted.finished_jobs(service.name, count=3)
        assert restarted.engine.watcher.poll(service) == 0
        assert sorted(job.key or "" for job in restarted.jobs(service.name)) == [
            "in/one.txt",
            "in/one.txt",
            "in/two.txt",
        ]
