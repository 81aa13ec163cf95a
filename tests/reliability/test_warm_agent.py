"""Warm containers' calls through the agent (`engine/runtimes/agent.c`): nothing of one call
is there for the next, and the script's end is reported exactly, on the real Docker Engine.

Each call here is what a `/run` request does in its warm container: a fresh work directory
moved into the container's mounted directory, the script run as the service's unprivileged
user, then `settle`. The attacker tries to leave files in every writable place and processes
that outlive it; the next call looks for them.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator

import pytest

from oscarpy.engine import contract
from oscarpy.engine.runtimes.base import EndReason, Limits, RunResult
from oscarpy.engine.runtimes.docker import DockerRuntime
from oscarpy.engine.runtimes.docker_warm import DockerRunRuntime, DockerWarmContainer
from oscarpy.engine.runtimes.warm import WarmSpec, new_container_dir

IMAGE = "oscar-test/busybox:latest"

LEAVE_BEHIND = r"""
echo out; echo err >&2
for place in /tmp /dev/shm "$HOME" /var/tmp / /etc; do
  echo left > "$place/left-behind" 2>/dev/null && echo "wrote $place"
done
( trap '' HUP TERM; setsid sleep 300 ) </dev/null >/dev/null 2>&1 &
( trap '' HUP TERM; while :; do sleep 1; done ) &
echo survivors started
"""

LOOK = r"""
for place in /tmp /dev/shm "$HOME" /var/tmp / /etc; do
  [ -e "$place/left-behind" ] && echo "found $place/left-behind"
done
ls /proc | grep -c '^[0-9]'
"""


@pytest.fixture(scope="module")
def warm(
    docker_client: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DockerWarmContainer]:
    root = tmp_path_factory.mktemp("agent")
    jobs = DockerRuntime(f"test-{uuid.uuid4().hex[:8]}")
    runtime = DockerRunRuntime(jobs, "test-owner", lambda owner: False, root / "agent")
    spec = WarmSpec("agent-test", IMAGE, Limits(memory_bytes=48 * 2**20), contract.SCRIPT_USER)
    container = runtime.create(spec, new_container_dir(root / "containers", "agent"))
    try:
        yield container
    finally:
        container.remove()
        jobs.close()


def call(container: DockerWarmContainer, script: str, timeout: float = 20) -> tuple[RunResult, str]:
    """One call as `/run` makes it: fresh work directory in, script, settle, directory out."""
    work_dir = container.host_dir / uuid.uuid4().hex
    (work_dir / "output").mkdir(parents=True)
    (work_dir / "script.sh").write_text(script)
    # Modes as the runner sets them, whatever umask an earlier in-process server left.
    for path, mode in (
        (work_dir, 0o755),
        (work_dir / "output", 0o1777),
        (work_dir / "script.sh", 0o644),
    ):
        path.chmod(mode)
    output = bytearray()
    try:
        result = container.run(work_dir, "script.sh", {"GREETING": "hi"}, timeout, output.extend)
    finally:
        shutil.rmtree(work_dir)
    return result, output.decode()


def test_calls_go_through_the_agent(warm: DockerWarmContainer) -> None:
    assert warm.through_agent, "no agent: is a C compiler (cc) installed?"
    result, output = call(warm, 'id -u; echo "$GREETING"\n')
    assert result.exit_code == 0
    assert output.split() == [contract.SCRIPT_USER.partition(":")[0], "hi"]


def test_nothing_a_call_leaves_behind_is_there_for_the_next(warm: DockerWarmContainer) -> None:
    result, output = call(warm, LEAVE_BEHIND)
    # Positive control: the attacker ran and could write the places the next call looks at.
    assert "out" in output and "err" in output and "survivors started" in output
    assert "wrote /tmp" in output and "wrote /dev/shm" in output
    written = output.splitlines()
    assert "wrote /etc" not in written and "wrote /" not in written  # the root is read-only
    assert warm.settle(), "a process of the call survived it"

    _, seen = call(warm, LOOK)
    assert "found" not in seen, seen
    # docker-init, the agent, and the looking script's shell and its `ls`/`grep` at most.
    assert int(seen.split()[-1]) <= 5, seen


def test_exit_codes_signals_and_timeouts_are_reported_exactly(warm: DockerWarmContainer) -> None:
    assert call(warm, "exit 3\n")[0].exit_code == 3
    killed, _ = call(warm, "kill -TERM $$\n")
    assert killed.reason is EndReason.SIGNAL and killed.exit_code == 128 + 15
    late, output = call(warm, "echo started; sleep 30 &\nwait\n", timeout=1)
    assert late.reason is EndReason.TIMEOUT and "started" in output
    assert warm.settle(), "the timed-out script's processes survived"
    assert call(warm, "echo alive\n")[1] == "alive\n"


def test_running_out_of_memory_is_reported_as_such(warm: DockerWarmContainer) -> None:
    result, _ = call(warm, "x=a; while :; do x=$x$x; done\n")
    assert result.reason is EndReason.OOM, result
    assert call(warm, "echo still-serving\n")[1] == "still-serving\n"
