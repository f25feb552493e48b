"""The client connection: connect, dispatch replies and events, reconnect with backoff and resume."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.typing import Subprotocol

from streaming.client.errors import ClientClosed, ConnectionLost, ServerError
from streaming.client.streams import Event, Reset, Stream
from streaming.wire import protocol as p
from streaming.wire.protocol import Position

logger = logging.getLogger(__name__)

# Reconnect delays: full jitter over BACKOFF_BASE * 2**attempt, capped at BACKOFF_CAP (seconds).
BACKOFF_BASE = 0.25
BACKOFF_CAP = 10.0
# A connection that stayed open this long was healthy, so the next loss starts the backoff afresh;
# a server that accepts and drops at once keeps growing the delay instead of being hammered.
STABLE_AFTER = 10.0
REQUEST_TIMEOUT = 10.0
# Handshake refusals (HTTP status) that no retry can fix, mapped to their close-code meaning.
TERMINAL_STATUS = {401: p.CLOSE_UNAUTHENTICATED, 403: p.CLOSE_FORBIDDEN}

TokenProvider = Callable[[], Awaitable[str]]


class State(enum.StrEnum):
    CONNECTING = "connecting"
    OPEN = "open"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


@dataclass(slots=True)
class Stats:
    reconnects: int = 0
    last_reconnect_s: float | None = None  # from losing a connection to the next `welcome`
    max_reconnect_s: float = 0.0
    duplicates_dropped: int = 0
    resets: int = 0


def backoff_delay(
    attempt: int,
    *,
    base: float = BACKOFF_BASE,
    cap: float = BACKOFF_CAP,
    hint: float = 0.0,
    spread: float = 0.0,
) -> float:
    """Full-jitter exponential backoff, never sooner than the server's `retry_after_ms` hint plus a
    random share of its `spread_ms` window (so a restarted worker's clients do not return at once)."""
    return max(hint + random.uniform(0.0, spread), random.uniform(0.0, min(cap, base * 2**attempt)))


class StreamClient:
    """One websocket multiplexing subscriptions, resumed with `since` after every non-terminal close."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        token_provider: TokenProvider | None = None,
        auth_header: bool = False,
        on_reset: Callable[[Reset], None] | None = None,
        on_state: Callable[[State], None] | None = None,
        backoff_base: float = BACKOFF_BASE,
        backoff_cap: float = BACKOFF_CAP,
        request_timeout: float = REQUEST_TIMEOUT,
        **connect_options: Any,
    ) -> None:
        self.url = url
        self.token_provider = token_provider
        self.auth_header = auth_header
        self.on_reset = on_reset
        self.on_state = on_state
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        self.request_timeout = request_timeout
        self.state = State.CLOSED
        self.stats = Stats()
        self.welcome: dict[str, Any] | None = None
        self.expires_at: str | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self._token = token
        self._options = connect_options
        self._ws: ClientConnection | None = None
        self._streams: list[Stream] = []
        self._by_key: dict[tuple[str, str], Stream] = {}
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._subscribing: dict[int, Stream] = {}
        self._ids = itertools.count(1)
        self._events: asyncio.Queue[Event | Reset | None] = asyncio.Queue()
        self._state_changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._retry_hint = 0.0
        self._retry_spread = 0.0
        self._lost_at: float | None = None
        self._opened_at = 0.0
        self._auth_retried = False

    async def __aenter__(self) -> StreamClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- public API -------------------------------------------------------------------------

    async def connect(self) -> dict[str, Any]:
        """Connect and return `welcome`; transient failures are retried, terminal ones raise."""
        if self._task is None:
            self._set_state(State.CONNECTING)
            self._task = asyncio.create_task(self._run())
        await self._wait_open()
        assert self.welcome is not None
        return self.welcome

    async def close(self) -> None:
        if self._task is None or self.state is State.CLOSED:
            return
        self._stop(p.CLOSE_NORMAL, "closed by client")
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        for task in [self._task, *self._background]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def subscribe(
        self, service: str, topic: str | None = None, *, since: Position | None = None
    ) -> str:
        """Follow a stream (from `since`, e.g. a snapshot's position); returns the topic the server uses.

        The subscription is kept, and sent again on every new connection, until `unsubscribe()`.
        """
        for stream in self._streams:
            if stream.matches(service, topic):
                return await asyncio.shield(stream.ready)
        stream = Stream(service, topic, since)
        self._streams.append(stream)
        if self.state is State.OPEN and self._ws is not None:
            await self._send_subscribe(self._ws, stream)
        return await asyncio.shield(stream.ready)

    async def unsubscribe(self, service: str, topic: str) -> None:
        stream = self._by_key.pop((service, topic), None)
        if stream is not None:
            self._streams.remove(stream)
        await self._call({"type": p.UNSUBSCRIBE, "service": service, "topic": topic})

    async def request(self, service: str, action: str, data: Any = None) -> Any:
        """Run a service action; returns the `data` of its `response` or raises ServerError."""
        reply = await self._call({"type": p.REQUEST, "service": service, "action": action, "data": data})
        return reply.get("data")

    async def ping(self) -> float:
        """Round trip to the server, in seconds."""
        started = time.monotonic()
        await self._call({"type": p.PING})
        return time.monotonic() - started

    async def refresh(self, token: str) -> str | None:
        """Swap in a fresh token in band; returns the new `expires_at`. Reconnects use it too."""
        self._token = token
        reply = await self._call({"type": p.AUTH, "token": token})
        self.expires_at = reply.get("expires_at")
        return self.expires_at

    async def events(self) -> AsyncIterator[Event | Reset]:
        """Events in order per stream, and Reset notices; raises ClientClosed on a terminal close."""
        while (item := await self._events.get()) is not None:
            yield item
        self._events.put_nowait(None)  # later iterators end too
        if self.close_code in p.TERMINAL_CLOSE_CODES:
            raise ClientClosed(self.close_code, self.close_reason)

    # --- connection loop --------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._reconnect_forever()
        except Exception:
            logger.exception("stream client failed")
            self._stop(1011, "client error")

    async def _reconnect_forever(self) -> None:
        attempt = 0
        while self.state is not State.CLOSED:
            self._opened_at = 0.0
            code, reason = await self._connect_once()
            self._fail_pending(ConnectionLost(f"connection closed ({code}): {reason}"))
            if self.state is State.CLOSED:
                return
            if code in p.TERMINAL_CLOSE_CODES and not await self._fresh_token_for(code):
                self._stop(code, reason)
                return
            if self._opened_at and time.monotonic() - self._opened_at >= STABLE_AFTER:
                attempt = 0
            hint, spread = self._retry_hint, self._retry_spread
            self._retry_hint = self._retry_spread = 0.0
            delay = backoff_delay(
                attempt, base=self.backoff_base, cap=self.backoff_cap, hint=hint, spread=spread
            )
            attempt += 1
            logger.info("stream connection closed (%s %s); reconnecting in %.2fs", code, reason, delay)
            self._lost_at = self._lost_at or time.monotonic()
            self._set_state(State.RECONNECTING)
            await asyncio.sleep(delay)

    async def _connect_once(self) -> tuple[int, str]:
        try:
            ws = await connect(self.url, **self._connect_options())
        except InvalidStatus as exc:
            status = exc.response.status_code
            return TERMINAL_STATUS.get(status, 1006), f"handshake refused with HTTP {status}"
        except (OSError, TimeoutError, WebSocketException) as exc:
            return 1006, str(exc) or type(exc).__name__
        self._ws = ws
        try:
            async for raw in ws:
                await self._dispatch(ws, raw)
        except ConnectionClosed:
            pass
        finally:
            self._ws = None
            await ws.close()
        return ws.close_code or 1006, ws.close_reason or ""

    def _connect_options(self) -> dict[str, Any]:
        offered = [Subprotocol(p.SUBPROTOCOL)]
        if self.auth_header:
            headers = {"Authorization": f"Bearer {self._token}"}
            return {"subprotocols": offered, "additional_headers": headers, **self._options}
        return {"subprotocols": [*offered, Subprotocol(p.BEARER_PREFIX + self._token)], **self._options}

    async def _fresh_token_for(self, code: int) -> bool:
        """After a 4401, ask the token provider once for a new token before giving up."""
        if code != p.CLOSE_UNAUTHENTICATED or self.token_provider is None or self._auth_retried:
            return False
        self._auth_retried = True
        try:
            self._token = await self.token_provider()
        except Exception:
            logger.exception("token provider failed")
            return False
        return True

    def _set_state(self, state: State) -> None:
        self.state = state
        self._state_changed.set()
        self._state_changed = asyncio.Event()
        if self.on_state is not None:
            self.on_state(state)

    def _stop(self, code: int, reason: str) -> None:
        self.close_code, self.close_reason = code, reason
        self._set_state(State.CLOSED)
        self._fail_pending(ClientClosed(code, reason))
        for stream in self._streams:
            if not stream.ready.done():
                stream.ready.set_exception(ClientClosed(code, reason))
                stream.ready.exception()  # retrieved here: nobody may be awaiting it
        self._events.put_nowait(None)

    def _fail_pending(self, exc: Exception) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(exc)
        self._pending.clear()
        self._subscribing.clear()

    async def _wait_open(self) -> ClientConnection:
        while self.state is not State.OPEN or self._ws is None:
            if self.state is State.CLOSED:
                raise ClientClosed(self.close_code, self.close_reason or "not connected")
            await self._state_changed.wait()
        return self._ws

    async def _call(self, message: dict[str, Any]) -> dict[str, Any]:
        ws = await self._wait_open()
        msg_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        try:
            await ws.send(json.dumps({**message, "id": msg_id}))
            async with asyncio.timeout(self.request_timeout):
                return await future
        except ConnectionClosed as exc:
            raise ConnectionLost(str(exc)) from exc
        finally:
            self._pending.pop(msg_id, None)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- incoming messages ------------------------------------------------------------------

    async def _dispatch(self, ws: ClientConnection, raw: str | bytes) -> None:
        try:
            msg = json.loads(raw)
            await self._handle(ws, msg["type"], msg)
        except (ValueError, TypeError, KeyError):
            logger.warning("ignoring a malformed server frame: %.200s", raw)

    async def _handle(self, ws: ClientConnection, kind: str, msg: dict[str, Any]) -> None:
        if kind == p.PING:
            await ws.send(json.dumps({"type": p.PONG, **({"id": msg["id"]} if "id" in msg else {})}))
        elif kind == p.WELCOME:
            await self._on_welcome(ws, msg)
        elif kind == p.EVENT:
            self._on_event(msg)
        elif kind == p.RECONNECT:
            self._retry_hint = float(msg.get("retry_after_ms") or 0) / 1000
            self._retry_spread = float(msg.get("spread_ms") or 0) / 1000
        elif kind == p.TOKEN_EXPIRING:
            self._spawn(self._refresh_from_provider())
        elif msg.get("id") in self._subscribing:
            self._on_subscribe_reply(self._subscribing.pop(msg["id"]), msg)
        elif msg.get("id") in self._pending:
            self._on_reply(self._pending.pop(msg["id"]), msg)
        elif kind == p.ERROR:
            logger.warning("server error: %s %s", msg.get("code"), msg.get("message"))

    async def _on_welcome(self, ws: ClientConnection, msg: dict[str, Any]) -> None:
        self.welcome, self.expires_at = msg, msg.get("expires_at")
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
        if msg.get("type") == p.ERROR:
            self._drop_stream(stream, msg)
            return
        self._by_key[(stream.service, msg["topic"])] = stream
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

    def _on_event(self, msg: dict[str, Any]) -> None:
        stream = self._by_key.get((msg["service"], msg["topic"]))
        if stream is None:
            return  # a stream we have left
        reset, event = stream.on_event(msg)
        self._report(reset)
        if event is None:
            self.stats.duplicates_dropped += 1
        else:
            self._events.put_nowait(event)

    def _report(self, reset: Reset | None) -> None:
        if reset is None:
            return
        self.stats.resets += 1
        self._events.put_nowait(reset)
        if self.on_reset is not None:
            self.on_reset(reset)

    async def _refresh_from_provider(self) -> None:
        if self.token_provider is None:
            return
        try:
            await self.refresh(await self.token_provider())
        except Exception:
            logger.exception("in-band token refresh failed")
