"""The control bus: admin and auth changes reach every worker through the channel layer.

Each worker reads one channel-layer channel in the group below (not one per connection) and
applies operations to its own connections: close by token/user/session, service switches, rechecks.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from streaming import access, auth
from streaming import protocol as p
from streaming.conf import streaming_settings
from streaming.worker import Worker, on_start

logger = logging.getLogger(__name__)

GROUP = "streaming.control"


async def abroadcast(op: str, **fields: Any) -> None:
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(GROUP, {"type": "streaming.control", "op": op, **fields})


def broadcast(op: str, **fields: Any) -> None:
    """Send a control operation to every worker (from sync code: views, signals, commands)."""
    async_to_sync(abroadcast)(op, **fields)


async def apply(worker: Worker, op: str, fields: dict[str, Any]) -> None:
    if op == "close":
        close_matching(worker, fields)
    elif op == "service":
        await set_service(worker, fields["name"], fields["enabled"])
    elif op == "recheck":
        await recheck(worker, fields)
    else:
        handler = _extra_ops.get(op)
        if handler is None:
            logger.warning("Unknown control operation %r", op)
        else:
            result = handler(worker, fields)
            if asyncio.iscoroutine(result):
                await result


_extra_ops: dict[str, Any] = {}


def operation(name: str) -> Any:
    """Register a handler for a control operation defined outside this module (drain, limits)."""

    def decorator(func: Any) -> Any:
        _extra_ops[name] = func
        return func

    return decorator


def close_matching(worker: Worker, fields: dict[str, Any]) -> None:
    checksum, user_id = fields.get("checksum"), fields.get("user_id")
    sessions = set(fields.get("sessions") or ())
    if checksum:
        auth.forget(checksum)
    for conn in list(worker.connections.values()):
        grant = conn.grant
        if grant is None:
            continue
        if (
            (checksum and grant.checksum == checksum)
            or (user_id is not None and grant.principal.user_id == user_id)
            or conn.session_id in sessions
        ):
            code, reason = int(fields.get("code", p.CLOSE_FORBIDDEN)), str(fields.get("reason", "Closed."))
            if code in (p.CLOSE_RESTART, p.CLOSE_OVERLOADED):  # "come back later": say when
                conn.close_with_retry(code, reason, streaming_settings.OVERLOAD_RETRY_MS)
            else:
                conn.close(code, reason)


async def set_service(worker: Worker, name: str, enabled: bool) -> None:
    from streaming.consumers import drop_disallowed

    if enabled:
        access.disabled_services.discard(name)
        return
    access.disabled_services.add(name)
    for conn in list(worker.connections.values()):
        if any(key[0] == name for key in conn.subscriptions):
            await drop_disallowed(worker, conn)


async def recheck(worker: Worker, fields: dict[str, Any]) -> None:
    """Re-verify the tokens of some users' connections; close or narrow what changed."""
    from streaming import audit, limits
    from streaming.consumers import drop_disallowed

    user_ids = set(fields.get("user_ids") or ())
    everyone = bool(fields.get("all"))
    auth.forget()
    for conn in list(worker.connections.values()):
        grant = conn.grant
        if grant is None or not (everyone or grant.principal.user_id in user_ids):
            continue
        try:
            conn.grant = await database_sync_to_async(auth.reverify)(grant)
        except auth.AuthError as refused:
            audit.record(
                audit.Kind.DENIED if refused.code == p.CLOSE_FORBIDDEN else audit.Kind.AUTH_FAILED,
                conn=conn,
                close_code=refused.code,
                detail=refused.reason,
            )
            conn.close(refused.code, refused.reason)
            continue
        limits.apply(conn)
        await drop_disallowed(worker, conn)


async def listen(worker: Worker) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    channel = await layer.new_channel("streaming.worker.")
    await layer.group_add(GROUP, channel)
    while True:
        try:
            message = await layer.receive(channel)
            await apply(worker, message["op"], message)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Control message failed")
            await asyncio.sleep(0.2)


async def load_disabled_services() -> None:
    from streaming.models import ServiceConfig

    names = await database_sync_to_async(
        lambda: set(ServiceConfig.objects.filter(enabled=False).values_list("name", flat=True))
    )()
    access.disabled_services.clear()
    access.disabled_services.update(names)


def _start(worker: Worker) -> None:
    worker.spawn(listen(worker))
    worker.spawn(load_disabled_services())


on_start(_start)
