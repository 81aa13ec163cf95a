"""`POST /run/{service}`: synchronous invocations answered from pools of warm containers."""

from __future__ import annotations

from oscarpy.engine.run.errors import BodyTooLarge, InvalidBody, InvocationError, PoolExhausted
from oscarpy.engine.run.runner import Answer, Cancel, Runner, iterate_answer

__all__ = [
    "Answer",
    "BodyTooLarge",
    "Cancel",
    "InvalidBody",
    "InvocationError",
    "PoolExhausted",
    "Runner",
    "iterate_answer",
]
