"""Daphne specifics: its reactor, its frame-size refusal, its close timing, its sweeps and its SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IListeningPort

from streaming.conf import streaming_settings

logger = logging.getLogger(__name__)

#: Seconds a slow reader cut off with 4013 has to read what was already sent before it is dropped.
SLOW_READER_CLOSE_GRACE = 5.0
#: Daphne visits every connection every 2 s for its timeouts and auto-ping; we visit the next
#: 1/SWEEP_SLICES of them per round instead, so a connection's auto-ping goes out 20–30 s apart
#: rather than 20–22 s (the ping timeout is autobahn's own timer, unaffected). Its once-a-second
#: reaping sweep stays: reaping later keeps each upgrade's HTTP request alive longer.
SWEEP_SLICES = 5

_frame_limit_checked = False


def reactor_of(loop: asyncio.AbstractEventLoop) -> Any | None:
    """The running Twisted reactor when daphne serves `loop`, else None (tests, other servers)."""
    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is None or not getattr(reactor, "running", False):
        return None
    if getattr(reactor, "_asyncioEventloop", None) is not loop:
        return None
    return reactor


def when_serving(start: Callable[[], object]) -> None:
    """Under daphne, call `start` once the reactor runs, before any websocket arrives."""
    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is not None and hasattr(reactor, "_asyncioEventloop"):
        reactor.callLater(0, start)


def stop_listening(reactor: Any) -> None:
    """Stop accepting: new connections on a shared socket go to the other workers instead."""
    for reader in reactor.getReaders():
        if IListeningPort.providedBy(reader):
            reader.stopListening()


def on_sigterm(loop: asyncio.AbstractEventLoop, handler: Callable[[], object]) -> None:
    """Under daphne, run `handler` on SIGTERM instead of daphne cancelling every application."""
    if reactor_of(loop) is not None:
        loop.add_signal_handler(signal.SIGTERM, handler)


def adopt_frame_limit(writer: Any) -> None:
    """Make daphne's own message-size refusal a clean 1009 close; warn if its limit differs from ours.

    Daphne (autobahn) refuses messages above --websocket-max-message-size from the frame header,
    before buffering them, but by default drops the TCP connection (the client sees 1006). With
    `failByDrop` off it sends a 1009 close frame instead. Ours closes with 4009 above
    MAX_FRAME_BYTES; equal values make the two agree, and an unlimited daphne would buffer any size.
    """
    global _frame_limit_checked
    protocol = getattr(writer, "protocol", None)
    server_limit = getattr(protocol, "maxMessagePayloadSize", None)
    if server_limit is None:
        return
    protocol.failByDrop = False
    if _frame_limit_checked:
        return
    _frame_limit_checked = True
    ours = streaming_settings.MAX_FRAME_BYTES
    if server_limit != ours:
        logger.warning(
            "daphne --websocket-max-message-size is %s but STREAMING MAX_FRAME_BYTES is %s; "
            "start daphne with --websocket-max-message-size %s",
            server_limit or "unlimited",
            ours,
            ours,
        )


class TimeoutSweep:
    """daphne's `timeout_checker` (its body is this loop), on the next chunk of connections per round."""

    __slots__ = ("server", "reactor", "cursor")

    def __init__(self, server: Any, reactor: Any) -> None:
        self.server, self.reactor, self.cursor = server, reactor, 0

    def __call__(self) -> None:
        for protocol in self.next_chunk():
            protocol.check_timeouts()
        self.reactor.callLater(2, self)

    def next_chunk(self) -> list[Any]:
        """The next 1/SWEEP_SLICES of the connections, in daphne's order (new ones come last)."""
        protocols = list(self.server.connections)
        if self.cursor >= len(protocols):
            self.cursor = 0
        size = -(-len(protocols) // SWEEP_SLICES)
        self.cursor += size
        return protocols[self.cursor - size : self.cursor]


def chunk_timeout_sweep(writer: Any) -> None:
    """Under daphne, swap its every-connection timeout sweep for the chunked one (once per server)."""
    server = getattr(getattr(writer, "protocol", None), "server", None)
    reactor = sys.modules.get("twisted.internet.reactor")
    if server is None or reactor is None or isinstance(vars(server).get("timeout_checker"), TimeoutSweep):
        return
    server.timeout_checker = TimeoutSweep(server, reactor)  # daphne reschedules it by this name


def slow_reader_grace(writer: Any) -> None:
    """Give a cut-off slow reader SLOW_READER_CLOSE_GRACE s to read its way to the 4013 close.

    Nothing more is written to it, so memory stays bounded; daphne would otherwise drop the TCP
    connection 1 s after the close frame was queued, behind the unread data, and the client would
    see 1006 instead of why it was cut off.
    """
    protocol = getattr(writer, "protocol", None)
    if protocol is not None and hasattr(protocol, "closeHandshakeTimeout"):
        protocol.closeHandshakeTimeout = SLOW_READER_CLOSE_GRACE
