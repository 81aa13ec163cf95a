"""What a job may write and print: a script that tries to write 10 GiB, or prints 1 GiB of log,
is killed with a clear reason while the host keeps its disk and the server stays responsive.

The module's platform has a 64 MiB disk limit and a 1 MiB kept log; the log flood limit is the
default (100 MiB), so that the figures are those a default installation sees.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from oscarpy.config import Settings
from oscarpy.engine.records import JobStatus
from tests.support.jobs import Harness, HealthProbe, running_engine

pytestmark = [pytest.mark.docker, pytest.mark.serial]  # free disk space and latency: alone

MiB = 1024 * 1024
GiB = 1024 * MiB
DISK_LIMIT = 64 * MiB
LOG_CAP = 1 * MiB
FLOOD_LIMIT = Settings.model_fields["job_log_flood_limit"].default
#: Far less than the 10 GiB the scripts try to write, far more than a limit's overshoot.
MAX_FREE_SPACE_DROP = 2 * GiB

WRITERS = {
    "one file": 'head -c 10737418240 /dev/zero > "$TMP_OUTPUT_DIR/big"\n',
    "one file, then more work": (
        'head -c 10737418240 /dev/zero > "$TMP_OUTPUT_DIR/big"\necho "head: $?"\nsleep 60\n'
    ),
    "8 MiB files in a loop": (
        "i=0\nwhile [ $i -lt 1280 ]; do\n"
        '  head -c 8388608 /dev/zero > "$TMP_OUTPUT_DIR/part$i"\n  i=$((i + 1))\ndone\n'
    ),
    "8 MiB files in the container's own filesystem": (
        "mkdir -p /tmp/scratch\ni=0\nwhile [ $i -lt 1280 ]; do\n"
        "  head -c 8388608 /dev/zero > /tmp/scratch/part$i\n  i=$((i + 1))\ndone\n"
    ),
}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, docker_client: object) -> Iterator[Harness]:
    data = tmp_path_factory.mktemp("limits") / "data"
    with running_engine(data, job_disk_limit=DISK_LIMIT, job_log_limit=LOG_CAP) as harness:
        yield harness


class Sampler:
    """Samples the data directory's free space (and `extra`, any size to watch) every 50 ms on a
    thread, keeping the largest drop and the largest `extra`."""

    def __init__(self, data_dir: Path, extra: Callable[[], int] | None = None) -> None:
        self.data_dir = data_dir
        self.extra = extra
        self.start_free = self._free()
        self.largest_drop = 0
        self.largest_extra = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _free(self) -> int:
        found = os.statvfs(self.data_dir)
        return found.f_bavail * found.f_frsize

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.largest_drop = max(self.largest_drop, self.start_free - self._free())
            if self.extra is not None:
                self.largest_extra = max(self.largest_extra, self.extra())

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)


def _assert_nothing_left(platform: Harness, name: str, bucket: str) -> None:
    platform.wait_for(lambda: not platform.docker_containers_of(name), 30, "container removal")
    work_root = platform.settings.data_dir / "jobs"
    platform.wait_for(lambda: not any(work_root.iterdir()), 30, "work directory removal")
    assert [o.key for o in platform.store.list_objects(bucket, "out/")] == ["out/"]  # the folder


@pytest.mark.parametrize("script", WRITERS.values(), ids=WRITERS.keys())
def test_a_script_writing_10_gib_is_killed_at_the_disk_limit(
    platform: Harness, script: str
) -> None:
    name, bucket = platform.in_out_service(script, "lim", cpu="1", memory="256Mi", retries=2)
    with HealthProbe(platform) as probe, Sampler(platform.settings.data_dir) as sampler:
        started = time.monotonic()
        platform.put(bucket, "in/a.txt", b"data\n")
        (job,) = platform.finished_jobs(name, timeout=60)
        elapsed = time.monotonic() - started
    _assert_nothing_left(platform, name, bucket)

    assert job.status is JobStatus.FAILED, (job.reason, job.message)
    assert job.reason == "disk", job.message
    assert job.attempts == 1  # not retried, although the service asks for retries
    assert re.fullmatch(
        r"killed: wrote [\d.]+ [KMG]iB to disk; the disk limit is 64 MiB "
        r"\(OSCAR_JOB_DISK_LIMIT\)",
        job.message or "",
    ), job.message
    assert elapsed < 20
    assert sampler.largest_drop < MAX_FREE_SPACE_DROP, sampler.largest_drop
    assert probe.slowest < 1.0, probe.slowest
    log = platform.engine.ledger.read_log(job.id)
    assert "outputs are not uploaded" in log
    print(
        f"\n{job.message}; failed {elapsed:.1f} s after the upload; free space dropped by at "
        f"most {sampler.largest_drop / MiB:.0f} MiB; slowest /health {probe.slowest:.3f} s"
    )


def _log_path(platform: Harness, docker_client: Any, service: str) -> str:
    """The log file of the service's container; "" until the container has started (a
    container that is only created has no log file yet)."""
    found = platform.docker_containers_of(service)
    return str(docker_client.api.inspect_container(found[0])["LogPath"]) if found else ""


def test_a_script_printing_1_gib_of_log_is_killed_at_the_flood_limit(
    platform: Harness, docker_client: Any
) -> None:
    script = "yes 'some line of text' | head -c 1073741824\necho end\n"
    name, bucket = platform.in_out_service(script, "lim", cpu="1", memory="256Mi")
    log_files: list[Path] = []

    def docker_log_bytes() -> int:
        """The log files' total size; dockerd rotates them as the sampler reads, so a file
        may vanish between listing and reading it."""
        total = 0
        for path in log_files:
            try:
                total += path.stat().st_size
            except FileNotFoundError:
                pass
        return total

    with HealthProbe(platform) as probe:
        started = time.monotonic()
        platform.put(bucket, "in/a.txt", b"data\n")
        log_path = Path(
            platform.wait_for(lambda: _log_path(platform, docker_client, name), 30, "a log file")
        )
        log_files.extend(log_path.with_name(f"{log_path.name}{n}") for n in ("", ".1", ".2"))
        with Sampler(platform.settings.data_dir, docker_log_bytes) as sampler:
            (job,) = platform.finished_jobs(name, timeout=120)
        elapsed = time.monotonic() - started
    _assert_nothing_left(platform, name, bucket)

    log = platform.engine.ledger.read_log(job.id, timestamps=True)
    assert job.status is JobStatus.FAILED, (job.reason, job.message)
    assert job.reason == "log_flood"
    assert job.message == (
        "killed: printed more than 100 MiB of log (OSCAR_JOB_LOG_FLOOD_LIMIT)"
    ), job.message
    assert job.log_truncated
    assert len(log.encode()) <= LOG_CAP + 4096, len(log)
    assert "log truncated: the limit of 1048576 bytes per job was reached" in log
    assert probe.slowest < 1.0, probe.slowest
    # dockerd keeps at most 3 files of 10 MB of the container's output (json-file, rotated).
    assert sampler.largest_extra <= 3 * 10 * 1000 * 1000 + MiB, sampler.largest_extra
    assert sampler.largest_drop < MAX_FREE_SPACE_DROP, sampler.largest_drop
    print(
        f"\nlog flood: failed after {elapsed:.1f} s ({FLOOD_LIMIT // MiB} MiB printed), kept "
        f"{len(log.encode())} bytes of log (with timestamps); dockerd's log files peaked at "
        f"{sampler.largest_extra / MiB:.1f} MiB; free space dropped by at most "
        f"{sampler.largest_drop / MiB:.0f} MiB; slowest /health {probe.slowest:.3f} s"
    )


def test_a_log_between_the_kept_cap_and_the_flood_limit_is_cut_and_the_job_succeeds(
    platform: Harness,
) -> None:
    script = f"yes 'a line of log that repeats' | head -c {16 * MiB}\necho end\n"
    name, bucket = platform.in_out_service(script, "lim", cpu="1")
    with HealthProbe(platform) as probe:
        platform.put(bucket, "in/a.txt", b"data\n")
        (job,) = platform.finished_jobs(name, timeout=60)
    log = platform.engine.ledger.read_log(job.id, timestamps=True)

    assert job.status is JobStatus.SUCCEEDED, (job.reason, job.message)
    assert job.log_truncated
    assert len(log.encode()) <= LOG_CAP + 4096, len(log)
    assert "log truncated" in log
    assert probe.slowest < 1.0, probe.slowest


def test_the_staged_input_does_not_count_against_the_disk_limit(platform: Harness) -> None:
    script = 'wc -c < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/size.txt"\n'
    name, bucket = platform.in_out_service(script, "lim", memory="256Mi")
    platform.put(bucket, "in/big.bin", b"\0" * (80 * MiB))

    assert platform.object_appears(bucket, "out/size.txt", 60).strip() == b"83886080"
    (job,) = platform.finished_jobs(name)
    assert job.status is JobStatus.SUCCEEDED
