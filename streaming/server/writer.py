"""Outbound paths to one websocket, each with a bounded buffer (a slow reader is cut off, not queued).

Under daphne frames are written straight to the Twisted transport, the websocket frame built once
per event for all subscribers; elsewhere (tests, other servers) an ordered queue feeds ASGI `send`.
"""

from __future__ import annotations

import asyncio
import functools
import struct
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet import tcp

from streaming.conf import streaming_settings

ASGISend = Callable[[dict[str, Any]], Awaitable[None]]


def ws_text_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented server-to-client text frame (RFC 6455 §5.2)."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


class Writer(ABC):
    """Common interface; `on_overflow` is called once when the outbound bound is exceeded."""

    __slots__ = ("on_overflow", "overflowed", "bytes_out", "messages_out")

    def __init__(self, on_overflow: Callable[[], None]) -> None:
        self.on_overflow = on_overflow
        self.overflowed = False
        self.bytes_out = 0
        self.messages_out = 0

    def _overflow(self) -> None:
        if not self.overflowed:
            self.overflowed = True
            self.on_overflow()

    def write(self, payload: bytes, frame: bytes | None = None) -> None:
        """Send one message (counted as session traffic), unless the client was cut off."""
        if not self.overflowed:
            self.messages_out += 1
            self.bytes_out += len(payload)
            self._write(payload, frame)

    def write_uncounted(self, payload: bytes) -> None:
        """A heartbeat: sent like any message, but not counted as traffic of the session."""
        if not self.overflowed:
            self._write(payload, None)

    def write_last(self, payload: bytes) -> None:
        """The parting message before a close, written even to a client that was cut off."""
        self._write(payload, None)

    @abstractmethod
    def _write(self, payload: bytes, frame: bytes | None) -> None:
        """Put one message on the wire (or the queue towards it)."""

    @abstractmethod
    def close(self, code: int, reason: str) -> None:
        """Send the close frame after whatever is queued."""


class DaphneWriter(Writer):
    """Writes frames directly to daphne's TCP transport, watching its write buffer.

    Twisted always buffers a write and sends it on the next writable callback (two epoll changes
    and a logged callback per write). When nothing is queued we send straight away instead, as
    asyncio transports do, and leave only the unsent rest to Twisted, which keeps the order.
    Unsent bytes live in the transport (`dataBuffer` from `offset`, plus `_tempDataLen`); beyond
    the bound the client is not reading and is cut off.
    """

    __slots__ = ("protocol", "transport", "open_state", "raw", "direct", "limit")

    def __init__(self, protocol: Any, on_overflow: Callable[[], None]) -> None:
        super().__init__(on_overflow)
        self.protocol = protocol
        self.transport = protocol.transport
        self.open_state = protocol.STATE_OPEN
        self.raw = getattr(protocol, "_perMessageCompress", None) is None
        self.direct = self.raw and isinstance(self.transport, tcp.Connection)
        self.limit = streaming_settings.MAX_OUTBOUND_BYTES

    def _write(self, payload: bytes, frame: bytes | None) -> None:
        protocol = self.protocol
        if protocol.state != self.open_state:
            return
        if not self.raw:
            protocol.sendMessage(payload, False)
            return
        data = frame or ws_text_frame(payload)
        transport = self.transport
        if self.direct and not transport._tempDataLen and transport.offset == len(transport.dataBuffer):
            if not transport.connected or transport._writeDisconnected:
                return
            sent = transport.writeSomeData(data)
            if isinstance(sent, int) and sent >= len(data):
                return
            if isinstance(sent, int) and sent > 0:
                data = data[sent:]
        transport.write(data)
        if self.buffered() > self.limit:
            self._overflow()

    def buffered(self) -> int:
        transport = self.transport
        try:
            return len(transport.dataBuffer) - transport.offset + transport._tempDataLen
        except AttributeError:  # not a Twisted FileDescriptor transport: nothing to measure
            return 0

    def close(self, code: int, reason: str) -> None:
        if self.protocol.state == self.open_state:
            self.protocol.sendClose(code=code, reason=reason[:120])


class QueueWriter(Writer):
    """Feeds ASGI `send` from an ordered queue drained by one task; the queue is bounded in bytes."""

    def __init__(self, send: ASGISend, on_overflow: Callable[[], None]) -> None:
        super().__init__(on_overflow)
        self.send = send
        self.queue: deque[tuple[dict[str, Any], int]] = deque()
        self.pending_bytes = 0
        self.wakeup = asyncio.Event()
        self.closed = False
        self.limit = streaming_settings.MAX_OUTBOUND_BYTES
        self.task = asyncio.get_running_loop().create_task(self._drain())

    def _write(self, payload: bytes, frame: bytes | None) -> None:
        if self.closed:
            return
        self.pending_bytes += len(payload)
        self.queue.append((self.message(payload), len(payload)))
        self.wakeup.set()
        if self.pending_bytes > self.limit:
            self._overflow()

    def message(self, payload: bytes) -> dict[str, Any]:
        """The ASGI message carrying `payload`."""
        return {"type": "websocket.send", "text": payload.decode()}

    def last_message(self, code: int, reason: str) -> dict[str, Any]:
        """The ASGI message that ends the output."""
        return {"type": "websocket.close", "code": code, "reason": reason[:120]}

    def close(self, code: int, reason: str) -> None:
        if not self.closed:
            self.closed = True
            self.queue.append((self.last_message(code, reason), -1))
            self.wakeup.set()

    async def _drain(self) -> None:
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            while self.queue:
                message, size = self.queue.popleft()
                self.pending_bytes -= max(size, 0)
                await self.send(message)
                if size < 0:
                    return

    def stop(self) -> None:
        self.task.cancel()


def make_writer(send: ASGISend, on_overflow: Callable[[], None]) -> Writer:
    """The fastest writer the server allows: direct under daphne, a queue elsewhere."""
    if isinstance(send, functools.partial) and send.args and hasattr(send.args[0], "sendMessage"):
        return DaphneWriter(send.args[0], on_overflow)
    return QueueWriter(send, on_overflow)
