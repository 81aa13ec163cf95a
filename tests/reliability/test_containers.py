"""What a job's container may do: no privileges, capabilities dropped, no new privileges, no
Docker socket; a fork bomb is held by the pids limit while the server keeps answering `/health`
quickly. What a job may write and print: `test_job_limits.py`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from oscarpy.engine.records import JobStatus
from oscarpy.engine.runtimes.base import DEFAULT_PIDS_LIMIT
from tests.support.jobs import Harness, HealthProbe, running_engine

pytestmark = pytest.mark.docker

#: Docker's default capability set (what a container gets with no cap_add/cap_drop).
DOCKER_DEFAULT_CAPABILITIES = {
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
    "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
}  # fmt: skip

INSPECT_SCRIPT = """\
grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status
for socket in /var/run/docker.sock /run/docker.sock /docker.sock; do
  if [ -e "$socket" ]; then echo "SOCKET PRESENT $socket"; fi
done
if mknod /tmp/device c 1 3 2>/dev/null; then echo "MKNOD ALLOWED"; fi
if mount -t tmpfs none /mnt 2>/dev/null; then echo "MOUNT ALLOWED"; fi
if ip link add dummy0 type dummy 2>/dev/null; then echo "NETADMIN ALLOWED"; fi
echo checked > "$TMP_OUTPUT_DIR/done.txt"
# Runs until the test has inspected the container (at most 30 s).
i=0
while [ ! -e "$TMPDIR/inspected" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
"""


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, docker_client: object) -> Iterator[Harness]:
    data = tmp_path_factory.mktemp("containers") / "data"
    with running_engine(data) as harness:
        yield harness


def _job(platform: Harness, script: str, **fields: Any) -> str:
    name, bucket = platform.in_out_service(script, "cont", **fields)
    platform.put(bucket, "in/a.txt", b"data\n")
    return name


def _capabilities(mask_hex: str) -> set[str]:
    """Capability names of a /proc status mask (the numbers of linux/capability.h)."""
    names = [
        "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
        "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
        "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
        "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
        "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
        "AUDIT_CONTROL", "SETFCAP",
    ]  # fmt: skip
    mask = int(mask_hex, 16)
    return {name for bit, name in enumerate(names) if mask >> bit & 1} | (
        {"OTHER"} if mask >> len(names) else set()
    )


def test_a_job_runs_without_privileges_or_the_docker_socket(
    platform: Harness, docker_client: Any
) -> None:
    # As root in the container (`run_as_root`), the worst case: an unprivileged script (the
    # default) has no effective capability at all.
    name = _job(platform, INSPECT_SCRIPT, run_as_root=True)
    container_id = platform.wait_for(
        lambda: platform.docker_containers_of(name), 30, "the job's container"
    )[0]
    host_config = docker_client.api.inspect_container(container_id)["HostConfig"]
    (running,) = platform.jobs(name)
    work_dir = platform.engine.supervisor.work_dir(running.id, 1)
    (work_dir / "tmp" / "inspected").touch()
    (job,) = platform.finished_jobs(name)
    log = platform.engine.ledger.read_log(job.id)
    assert job.status is JobStatus.SUCCEEDED, log

    # Seen from inside: fewer capabilities than Docker's defaults, no way to gain more.
    status = dict(line.split(":\t", 1) for line in log.splitlines() if ":\t" in line)
    effective = _capabilities(status["CapEff"].strip())
    bounding = _capabilities(status["CapBnd"].strip())
    assert effective < DOCKER_DEFAULT_CAPABILITIES, effective
    assert bounding == effective
    assert {"MKNOD", "NET_RAW", "SYS_ADMIN", "NET_ADMIN", "SETFCAP", "SYS_CHROOT"}.isdisjoint(
        effective
    )
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"  # Docker's default seccomp profile is on
    for refused in ("SOCKET PRESENT", "MKNOD ALLOWED", "MOUNT ALLOWED", "NETADMIN ALLOWED"):
        assert refused not in log, log

    # Seen from the Docker Engine.
    assert host_config["Privileged"] is False
    assert host_config["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host_config["SecurityOpt"]
    assert 0 < host_config["PidsLimit"] <= DEFAULT_PIDS_LIMIT
    # The work directory, and the network holder's name files, read-only (docker.sock never).
    binds = [bind.split(":") for bind in host_config.get("Binds") or []]
    assert not [bind for bind in binds if "docker.sock" in bind[0]], binds
    shared = {
        target: mode for source, target, mode in binds if source.startswith("/var/lib/docker")
    }
    assert shared == dict.fromkeys(["/etc/hosts", "/etc/resolv.conf", "/etc/hostname"], "ro")
    assert host_config["NetworkMode"].startswith("container:"), host_config["NetworkMode"]
    assert host_config["PidMode"] != "host"
    # No file past the disk limit; dockerd keeps a bounded tail of the output on its disk.
    limit = platform.settings.job_disk_limit
    assert {"Name": "fsize", "Soft": limit, "Hard": limit} in host_config["Ulimits"]
    assert host_config["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-file": "3", "max-size": "10m"},
    }


BOMB = """\
echo "pids limit holds the bomb"
bomb() { bomb | bomb & }
bomb
sleep 60
"""


def test_a_fork_bomb_is_held_by_the_pids_limit_and_killed_at_its_timeout(
    platform: Harness, docker_client: Any
) -> None:
    started = time.monotonic()
    with HealthProbe(platform) as probe:
        name = _job(platform, BOMB, timeout=8, cpu="0.5", memory="256Mi")
        container_id = platform.wait_for(
            lambda: platform.docker_containers_of(name), 30, "the bomb's container"
        )[0]
        time.sleep(4)
        try:
            stats = docker_client.api.stats(container_id, stream=False)
            pids = stats.get("pids_stats", {}).get("current", 0)
        except Exception:  # the container may have ended meanwhile
            pids = 0
        (job,) = platform.finished_jobs(name, timeout=60)
        ended = time.monotonic() - started
        platform.wait_for(lambda: not platform.docker_containers_of(name), 60, "removal")
        removed = time.monotonic() - started
    print(f"fork bomb: {pids} pids, job ended after {ended:.1f} s, removed after {removed:.1f} s")
    assert pids <= DEFAULT_PIDS_LIMIT
    assert job.status is JobStatus.FAILED
    # Whichever limit the bomb reaches first ends it, with a reason that says which.
    assert (job.reason, job.message) in {
        ("timeout", "killed after the timeout of 8 s"),
        ("oom", "killed: out of memory (memory limit reached)"),
    }, (job.reason, job.message)
    assert probe.calls > 10 and probe.slowest < 1.0, probe.slowest
