"""How the supervisor measures what a script wrote and printed, and when it kills it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from oscarpy.engine import limits
from oscarpy.engine.errors import RuntimeUnavailable
from oscarpy.engine.limits import Guard, disk_usage, readable_size
from oscarpy.engine.runtimes.base import EndReason, Limits, result_from_exit

MiB = 1024 * 1024


class Kills:
    """Counts kills; fails the first `failures` of them as a lost daemon would."""

    def __init__(self, failures: int = 0) -> None:
        self.calls = 0
        self.failures = failures

    def __call__(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeUnavailable("the daemon does not answer")


def test_disk_usage_counts_sizes_and_blocks_once_per_file(tmp_path: Path) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "sub" / "deeper" / "data").write_bytes(b"x" * MiB)
    with open(tmp_path / "sparse", "wb") as sparse:
        sparse.truncate(5 * MiB)  # no blocks: counts at the size an upload would send
    os.link(tmp_path / "sub" / "deeper" / "data", tmp_path / "hard-link")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.write_bytes(b"y" * 3 * MiB)
    (tmp_path / "link").symlink_to(outside)  # never followed

    usage = disk_usage([tmp_path])

    assert 6 * MiB <= usage < 6 * MiB + 64 * 1024  # plus the directories' own blocks
    assert disk_usage([tmp_path / "missing"]) == 0
    assert disk_usage([tmp_path / "sparse"]) == 5 * MiB


def test_readable_sizes() -> None:
    assert readable_size(64 * MiB) == "64 MiB"
    assert readable_size(10 * 1024 * MiB) == "10 GiB"
    assert readable_size(int(1.5 * MiB)) == "1.5 MiB"
    assert readable_size(1000) == "1000 bytes"


def test_the_disk_limit_counts_only_what_the_script_added(tmp_path: Path) -> None:
    (tmp_path / "input").write_bytes(b"i" * 8 * MiB)
    kill = Kills()
    guard = Guard(kill, Limits(disk_bytes=4 * MiB), [tmp_path], disk_usage([tmp_path]))

    guard.check()
    assert guard.tripped is None and kill.calls == 0

    (tmp_path / "output").write_bytes(b"o" * 4 * MiB)
    guard.check(force=True)

    assert guard.tripped is not None and guard.tripped.reason is EndReason.DISK
    assert guard.tripped.message.startswith("killed: wrote 4 MiB to disk; the disk limit is 4 MiB")
    assert "OSCAR_JOB_DISK_LIMIT" in guard.tripped.message
    assert kill.calls == 1
    guard.check(force=True)
    assert kill.calls == 1  # killed once


def test_a_script_that_ends_between_two_checks_is_still_judged(tmp_path: Path) -> None:
    guard = Guard(Kills(), Limits(disk_bytes=MiB), [tmp_path])
    guard.check()
    (tmp_path / "big").write_bytes(b"b" * MiB)

    verdict = guard.verdict(result_from_exit(153))

    assert verdict.reason is EndReason.DISK and verdict.exit_code == 153
    assert guard.verdict(result_from_exit(0)).reason is EndReason.DISK


def test_no_limit_reached_keeps_the_scripts_own_result(tmp_path: Path) -> None:
    guard = Guard(Kills(), Limits(disk_bytes=MiB, output_bytes=MiB), [tmp_path])
    guard.counting(lambda chunk: None)(b"x" * 1000)

    assert guard.verdict(result_from_exit(3)) == result_from_exit(3)


def test_a_log_flood_stops_the_output_and_is_killed_from_the_ticker(tmp_path: Path) -> None:
    kill = Kills()
    passed: list[bytes] = []
    guard = Guard(kill, Limits(output_bytes=10), [tmp_path])
    sink = guard.counting(passed.append)

    sink(b"12345678")
    sink(b"abcdef")
    sink(b"more")

    assert b"".join(passed) == b"12345678ab"  # exactly the limit passes
    assert guard.printed == 18
    assert guard.tripped is not None and guard.tripped.reason is EndReason.LOG_FLOOD
    assert (
        guard.tripped.message
        == "killed: printed more than 10 bytes of log (OSCAR_JOB_LOG_FLOOD_LIMIT)"
    )
    # Not from the reader's thread (dockerd answers a kill only once the output is drained).
    assert kill.calls == 0
    guard.check()
    assert kill.calls == 1
    assert guard.verdict(result_from_exit(137)).reason is EndReason.LOG_FLOOD


def test_a_kill_that_fails_is_tried_again_on_the_next_check(tmp_path: Path) -> None:
    kill = Kills(failures=1)
    guard = Guard(kill, Limits(disk_bytes=MiB), [tmp_path])
    (tmp_path / "big").write_bytes(b"b" * 2 * MiB)

    guard.check()
    assert kill.calls == 1 and guard.tripped is not None
    guard.check()
    assert kill.calls == 2
    guard.check()
    assert kill.calls == 2


@pytest.mark.parametrize(("cost", "expected"), [(0.001, 50), (0.05, 10)])
def test_disk_checks_take_at_most_a_tenth_of_the_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cost: float, expected: int
) -> None:
    clock = [0.0]
    walks: list[float] = []

    def measure(roots: object) -> int:
        walks.append(clock[0])
        clock[0] += cost  # a large tree takes long to measure
        return 0

    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(limits, "disk_usage", measure)
    guard = Guard(Kills(), Limits(disk_bytes=MiB), [tmp_path])
    for tick in range(50):  # 5 s of ticks, 0.1 s apart
        clock[0] = tick * 0.1
        guard.check()

    assert len(walks) == expected
