"""When a small PUT's write and commit may run on the S3 event loop, and when they must not."""

from __future__ import annotations

import time

import pytest

from oscarpy.s3.payload import InlineWrites

LIMIT = InlineWrites.LIMIT_SECONDS
FAST = 0.0004  # a 1 KiB write + fsync + commit on a local disk


@pytest.fixture
def inline(monkeypatch: pytest.MonkeyPatch) -> InlineWrites:
    monkeypatch.setattr(InlineWrites, "PAUSE_SECONDS", 0.05)
    return InlineWrites()


def test_fast_writes_stay_inline(inline: InlineWrites) -> None:
    for _ in range(100):
        assert inline.allowed()
        inline.record(FAST)


def test_one_slow_write_among_fast_ones_does_not_pause(inline: InlineWrites) -> None:
    for _ in range(20):
        inline.record(FAST)
    inline.record(3 * LIMIT)
    assert inline.allowed()


def test_slow_writes_pause_inline_work_and_it_resumes_when_the_disk_is_back(
    inline: InlineWrites,
) -> None:
    for _ in range(3):
        inline.record(5 * LIMIT)  # a saturated disk: the event loop must not wait for it
    assert not inline.allowed()
    time.sleep(0.06)
    assert inline.allowed()
    inline.record(5 * LIMIT)  # still saturated: pause again at once
    assert not inline.allowed()
    time.sleep(0.06)
    inline.record(1.5 * LIMIT)  # meets the last thread writes on the disk: no new pause
    for _ in range(10):
        assert inline.allowed()
        inline.record(FAST)  # the disk is back


def test_a_disk_slowed_down_moderately_pauses_after_a_few_writes(inline: InlineWrites) -> None:
    for _ in range(20):
        inline.record(FAST)
    slow_writes = 0
    while inline.allowed():
        inline.record(2 * LIMIT)
        slow_writes += 1
    assert 2 <= slow_writes <= 10
