"""Logging set-up: one line per event, and secrets replaced before anything is written.

Secrets (the admin password, service tokens, `environment.secrets`, provider keys) are
registered with `register_secret` as soon as they are known; the formatter of the root handler
masks them in every message, including those of libraries.
"""

from __future__ import annotations

import logging
import sys
import threading

MASK = "********"
MIN_SECRET_LENGTH = 4
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_longest_first: tuple[str, ...] = ()
"""The secrets, longest first so that one containing another is masked whole; rebuilt when one
is registered (rarely), read without a lock by `redact` (for every log line)."""


def register_secret(value: str | None) -> None:
    """Mask `value` in every log line from now on (values too short to matter are ignored)."""
    global _longest_first
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _secrets_lock:
            if value not in _secrets:
                _secrets.add(value)
                _longest_first = tuple(sorted(_secrets, key=len, reverse=True))


def redact(text: str) -> str:
    for secret in _longest_first:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFormatter(logging.Formatter):
    """Formats, then masks secrets in the whole line, traceback included."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        RedactingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries that are chatty at INFO stay at WARNING unless debugging.
    quiet = logging.DEBUG if level == "DEBUG" else logging.WARNING
    for name in (
        "uvicorn.error",
        "uvicorn.access",
        "botocore",
        "boto3",
        "urllib3",
        "docker",
        "alembic",
    ):
        logging.getLogger(name).setLevel(quiet)
