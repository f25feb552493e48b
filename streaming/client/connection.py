"""The client connection: connect, dispatch replies and events, reconnect with backoff and resume."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.typing import Subprotocol

from streaming.client.backoff import BACKOFF_BASE, BACKOFF_CAP, STABLE_AFTER, backoff_delay
from streaming.client.errors import ClientClosed, ConnectionLost
from streaming.client.incoming import Incoming
from streaming.client.streams import Event, Followers, Reset, State, Stats, Stream
from streaming.wire import protocol as p
from streaming.wire.protocol import Position

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT = 10.0
# Handshake refusals (HTTP status) that no retry can fix, mapped to their close-code meaning.
TERMINAL_STATUS = {401: p.CLOSE_UNAUTHENTICATED, 403: p.CLOSE_FORBIDDEN}

TokenProvider = Callable[[], Awaitable[str]]


class StreamClient(Incoming):
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
        #: The latest resume ticket (from welcome, authenticated or ticket); reconnects present it.
        self._ticket: str | None = None
        self._ticket_offered = False

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
        self, service: str, topic: str | None = None, *, since: Position | None = None, delta: bool = False
    ) -> str:
        """Follow a stream (from `since`, e.g. a snapshot's position); returns the topic the server uses.

        With `delta`, the server may send events as fossil deltas; they are applied here, so the
        events read are the same. The subscription is kept, and sent again on every new connection,
        until `unsubscribe()`.
        """
        for stream in self._streams:
            if stream.matches(service, topic):
                return await asyncio.shield(stream.ready)
        stream = Stream(service, topic, since, delta=delta)
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

    async def presence(self, service: str, topic: str | None = None) -> Followers:
        """Who follows a stream now (ServerError `presence_unavailable` where the service does not say)."""
        message = {"type": p.PRESENCE, "service": service, **({"topic": topic} if topic else {})}
        reply = await self._call(message)
        return Followers(reply["count"], reply.get("users"))

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
        self._ticket = reply.get("ticket") or None
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
            if code == p.CLOSE_UNAUTHENTICATED and self._ticket_offered:
                self._ticket = None  # the token may still be valid: one more try with it
            elif code in p.TERMINAL_CLOSE_CODES and not await self._fresh_token_for(code):
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
        """Credentials for the next handshake: the resume ticket if we hold one, else the token."""
        offered = [Subprotocol(p.SUBPROTOCOL)]
        self._ticket_offered = self._ticket is not None
        if self._ticket is not None:
            return {"subprotocols": [*offered, Subprotocol(p.TICKET_PREFIX + self._ticket)], **self._options}
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

    async def _refresh_from_provider(self) -> None:
        if self.token_provider is None:
            return
        try:
            await self.refresh(await self.token_provider())
        except Exception:
            logger.exception("in-band token refresh failed")
