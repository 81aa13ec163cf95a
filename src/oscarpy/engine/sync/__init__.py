"""Synchronous invocations (`POST /run/{service}`) answered from pools of warm containers."""

from __future__ import annotations

from oscarpy.engine.sync.errors import BodyTooLarge, InvalidBody, InvocationError, PoolExhausted
from oscarpy.engine.sync.runner import Answer, SyncRunner, iterate_answer

__all__ = [
    "Answer",
    "BodyTooLarge",
    "InvalidBody",
    "InvocationError",
    "PoolExhausted",
    "SyncRunner",
    "iterate_answer",
]
