"""What the client does with each server message: replies, events, (re)subscriptions, resets."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from streaming.client.errors import ServerError
from streaming.client.streams import Reset, State, Stream
from streaming.wire import protocol as p

logger = logging.getLogger(__name__)


class Incoming:
    """The message handlers of `StreamClient` (its base: they use the client's own state)."""

    async def _dispatch(self, ws: ClientConnection, raw: str | bytes) -> None:
        try:
            msg = json.loads(raw)
            await self._handle(ws, msg["type"], msg, raw)
        except (ValueError, TypeError, KeyError):
            logger.warning("ignoring a malformed server frame: %.200s", raw)

    async def _handle(self, ws: ClientConnection, kind: str, msg: dict[str, Any], raw: str | bytes) -> None:
        if kind == p.PING:
            await ws.send(json.dumps({"type": p.PONG, **({"id": msg["id"]} if "id" in msg else {})}))
        elif kind == p.WELCOME:
            await self._on_welcome(ws, msg)
        elif kind == p.EVENT:
            self._on_event(msg, raw)
        elif kind == p.RECONNECT:
            self._retry_hint = float(msg.get("retry_after_ms") or 0) / 1000
            self._retry_spread = float(msg.get("spread_ms") or 0) / 1000
        elif kind == p.TICKET:
            self._ticket = msg["ticket"]
        elif kind == p.TOKEN_EXPIRING:
            self._spawn(self._refresh_from_provider())
        elif msg.get("id") in self._subscribing:
            self._on_subscribe_reply(self._subscribing.pop(msg["id"]), msg)
        elif msg.get("id") in self._pending:
            self._on_reply(self._pending.pop(msg["id"]), msg)
        elif kind == p.SUBSCRIBED:
            self._on_unrequested_subscribed(msg)
        elif kind == p.ERROR:
            self._on_server_error(msg)

    async def _on_welcome(self, ws: ClientConnection, msg: dict[str, Any]) -> None:
        self.welcome, self.expires_at = msg, msg.get("expires_at")
        self._ticket = msg.get("ticket") or None
        self._opened_at, self._auth_retried = time.monotonic(), False
        if self._lost_at is not None:
            took = self._opened_at - self._lost_at
            self.stats.reconnects += 1
            self.stats.last_reconnect_s = took
            self.stats.max_reconnect_s = max(self.stats.max_reconnect_s, took)
            self._lost_at = None
        for stream in self._streams:
            await self._send_subscribe(ws, stream)
        self._set_state(State.OPEN)

    async def _send_subscribe(self, ws: ClientConnection, stream: Stream) -> None:
        msg_id = next(self._ids)
        self._subscribing[msg_id] = stream
        try:
            await ws.send(json.dumps(stream.subscribe_message(msg_id)))
        except ConnectionClosed:
            pass  # the next connection resubscribes every stream

    def _on_subscribe_reply(self, stream: Stream, msg: dict[str, Any]) -> None:
        if stream not in self._streams:
            return  # unsubscribed while the reply was in flight
        if msg.get("type") == p.ERROR and msg.get("code") == p.SERVICE_DISABLED and stream.ready.done():
            return  # a live stream whose service is disabled for now: kept, started on enable
        if msg.get("type") == p.ERROR:
            self._drop_stream(stream, msg)
            return
        self._by_key[(stream.service, msg["topic"])] = stream
        self._report(stream.on_subscribed(msg))

    def _on_server_error(self, msg: dict[str, Any]) -> None:
        """An error no request waits for; one naming a live stream ends it, or suspends it while
        its service is disabled (the server starts it again, with what it missed, once re-enabled)."""
        logger.warning("server error: %s %s", msg.get("code"), msg.get("message"))
        stream = self._by_key.get((msg.get("service"), msg.get("topic")))  # type: ignore[arg-type]
        if stream is None:
            return
        if msg.get("code") == p.SERVICE_DISABLED:
            self._report(Reset(stream.service, stream.topic, p.SERVICE_DISABLED))
        else:
            self._drop_stream(stream, msg)

    def _on_unrequested_subscribed(self, msg: dict[str, Any]) -> None:
        """The server (re)started a stream by itself: a service was re-enabled, or its history reset."""
        stream = self._by_key.get((msg["service"], msg["topic"]))
        if stream is not None:
            self._report(stream.on_subscribed(msg))

    def _drop_stream(self, stream: Stream, msg: dict[str, Any]) -> None:
        self._streams.remove(stream)
        if stream.topic is not None:
            self._by_key.pop((stream.service, stream.topic), None)
        error = ServerError(msg.get("code", p.INTERNAL_ERROR), msg.get("message", ""))
        if stream.ready.done():
            self._report(Reset(stream.service, stream.topic, error.code))
        else:
            stream.ready.set_exception(error)

    def _on_reply(self, future: asyncio.Future[dict[str, Any]], msg: dict[str, Any]) -> None:
        if future.done():
            return
        if msg.get("type") == p.ERROR:
            future.set_exception(ServerError(msg.get("code", p.INTERNAL_ERROR), msg.get("message", "")))
        else:
            future.set_result(msg)

    def _on_event(self, msg: dict[str, Any], raw: str | bytes) -> None:
        stream = self._by_key.get((msg["service"], msg["topic"]))
        if stream is None:
            return  # a stream we have left
        msg, text = stream.expand(msg, raw)
        reset, event = stream.on_event(msg)
        self._report(reset)
        if event is None:
            self.stats.duplicates_dropped += 1
        else:
            stream.text = text
            self._events.put_nowait(event)

    def _report(self, reset: Reset | None) -> None:
        if reset is None:
            return
        self.stats.resets += 1
        self._events.put_nowait(reset)
        if self.on_reset is not None:
            self.on_reset(reset)
