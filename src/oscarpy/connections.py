"""Connection guards for both listening ports: read timeouts and a cap on waiting connections.

uvicorn holds a connection whose request headers never finish, or whose body stops arriving,
for as long as the client likes: 200 half-sent requests (slowloris) tie up the server without
ever showing a credential. Here every connection gets, on top of uvicorn's HTTP/1.1 protocol
(httptools or h11):

- a *header deadline*: the request line and headers must be complete within `header_timeout`
  seconds of the connection (or of the previous response), sent slowly or not;
- a *body idle timeout*: while a request body is still expected and the server is reading,
  `body_timeout` seconds without a byte end the connection (a slow but steady upload is fine);
- a cap on connections still waiting for their headers, that is, not yet authenticated: at
  most `per_address` from one client address and `total` in all; a connection beyond either is
  closed at once.

A connection closed here is closed without an answer, as uvicorn closes an idle keep-alive one.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.h11_impl import H11Protocol

if TYPE_CHECKING:
    _Protocol = H11Protocol
else:
    _Protocol = object

log = logging.getLogger("oscarpy.server")


@dataclass
class ConnectionLimits:
    """The limits of one listening port, and the connections waiting for headers on it."""

    header_timeout: float
    body_timeout: float
    per_address: int
    total: int
    waiting: Counter[str] = field(default_factory=Counter)

    def admit(self, address: str) -> bool:
        if self.waiting[address] >= self.per_address or self.waiting.total() >= self.total:
            return False
        self.waiting[address] += 1
        return True

    def release(self, address: str) -> None:
        self.waiting[address] -= 1
        if self.waiting[address] <= 0:
            del self.waiting[address]

    def protocol(self) -> type[Any]:
        """The uvicorn protocol class that enforces these limits (one class per port), built on
        the HTTP implementation uvicorn would choose (httptools when installed, else h11)."""
        base: type[Any]
        try:
            from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

            base = HttpToolsProtocol
        except ImportError:
            base = H11Protocol
        return type("GuardedHttpProtocol", (_Guard, base), {"limits": self})


class _Guard(_Protocol):
    """Mixed into uvicorn's protocol class: both implementations keep `client`, `loop`,
    `transport`, `flow` and the current request's `cycle`, and call `on_response_complete`."""

    limits: ConnectionLimits

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._address = ""
        self._waiting = False
        self._seen_cycle: object = None
        self._timer: asyncio.TimerHandle | None = None
        self._last_read = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._address = self.client[0] if self.client else "unknown"
        self._last_read = self.loop.time()
        self._await_headers()

    def data_received(self, data: bytes) -> None:
        self._last_read = self.loop.time()
        super().data_received(data)
        if self._waiting and self.cycle is not None and self.cycle is not self._seen_cycle:
            # The headers of a new request are complete: it is the routes' to authenticate.
            self._seen_cycle = self.cycle
            self._stop_waiting()
            self._schedule(self.limits.body_timeout, self._check_body)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._await_headers()  # the next request on this keep-alive connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        self._cancel_timer()
        super().connection_lost(exc)

    # -- the guard ------------------------------------------------------------------------

    def _await_headers(self) -> None:
        self._cancel_timer()
        if not self._waiting:
            if not self.limits.admit(self._address):
                log.debug("connection from %s refused: too many waiting", self._address)
                self.transport.close()
                return
            self._waiting = True
        self._schedule(self.limits.header_timeout, self._headers_too_slow)

    def _headers_too_slow(self) -> None:
        if self._waiting and not self.transport.is_closing():
            log.debug("connection from %s closed: headers not sent in time", self._address)
            self.transport.close()

    def _check_body(self) -> None:
        """Close a connection whose body stalls; rearm while the body is still expected."""
        cycle = self.cycle
        if cycle is None or cycle.response_complete or not cycle.more_body:
            return
        now = self.loop.time()
        if self.flow.read_paused:
            self._last_read = now  # the server is not reading: the client cannot send
        idle = now - self._last_read
        if idle >= self.limits.body_timeout:
            log.debug("connection from %s closed: request body stalled", self._address)
            self.transport.close()
            return
        self._schedule(self.limits.body_timeout - idle, self._check_body)

    def _stop_waiting(self) -> None:
        if self._waiting:
            self._waiting = False
            self.limits.release(self._address)

    def _schedule(self, delay: float, callback: Any) -> None:
        self._cancel_timer()
        self._timer = self.loop.call_later(delay, callback)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
