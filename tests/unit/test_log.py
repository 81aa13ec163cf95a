from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from oscarpy.log import MASK, configure_logging, redact, register_secret


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_registered_secrets_are_masked_in_messages_and_tracebacks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO")
    register_secret("hunter2-password")
    logger = logging.getLogger("oscarpy.test")
    logger.info("connecting with %s", "hunter2-password")
    try:
        raise ValueError("bad token hunter2-password")
    except ValueError:
        logger.exception("failed")
    output = capsys.readouterr().err
    assert "hunter2-password" not in output
    assert f"connecting with {MASK}" in output
    assert f"ValueError: bad token {MASK}" in output


def test_each_event_is_one_line_with_time_level_and_source(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO")
    logging.getLogger("oscarpy.test").info("started")
    logging.getLogger("oscarpy.test").debug("hidden at INFO")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert "INFO" in lines[0] and "oscarpy.test: started" in lines[0]


def test_a_secret_containing_another_is_masked_whole() -> None:

    register_secret("abcd-token")
    register_secret("prefix-abcd-token-suffix")  # registered later, and longer
    assert redact("x prefix-abcd-token-suffix y abcd-token") == f"x {MASK} y {MASK}"
