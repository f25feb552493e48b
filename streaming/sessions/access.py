"""Which services a principal may use, and the checks behind `subscribe` and `request`."""

from __future__ import annotations

from collections.abc import Container

from channels.db import database_sync_to_async

from streaming import services
from streaming.delivery.history import StreamKey
from streaming.services import Principal, Service
from streaming.wire.protocol import FORBIDDEN, SERVICE_DISABLED, UNKNOWN_SERVICE, ClientMessage, ProtocolError

#: Names of services an admin disabled; kept in step on every worker by the control bus.
disabled_services: set[str] = set()


def allowed_services(principal: Principal) -> list[str]:
    """Services the principal's token allows that are enabled and open to it."""
    result = []
    for service in services.all_services():
        if service.name in disabled_services or not principal.can_stream(service.name):
            continue
        if service.staff_only and not principal.is_staff:
            continue
        result.append(service.name)
    return result


def resolve(principal: Principal, name: str, msg_id: str | int | None) -> Service:
    """The service `name` if this principal may use it now, else a ProtocolError to reply."""
    service = services.get(name)
    if service is None:
        raise ProtocolError(UNKNOWN_SERVICE, f"Unknown service {name[:40]!r}.", msg_id)
    if name in disabled_services:
        raise ProtocolError(SERVICE_DISABLED, f"Service {name!r} is disabled.", msg_id)
    if not principal.can_stream(name):
        raise ProtocolError(FORBIDDEN, f"Your token does not allow service {name!r}.", msg_id)
    try:
        service.check_access(principal)
    except ProtocolError as exc:
        exc.msg_id = msg_id
        raise
    return service


def stream_key(
    principal: Principal, service: Service, topic: str | None, msg_id: str | int | None
) -> StreamKey:
    try:
        return service.name, service.topic_for(principal, topic)
    except ProtocolError as exc:
        exc.msg_id = msg_id
        raise


async def followable_key(
    principal: Principal, service: Service, topic: str | None, msg_id: str | int | None
) -> StreamKey:
    """The stream `topic` names, once its family's authorisation (run in a thread: it may use the
    ORM) allows this principal; ProtocolError (bad_request, forbidden) otherwise."""
    key = stream_key(principal, service, topic, msg_id)
    check = service.topic_check(key[1])
    if check is not None and not await database_sync_to_async(check)(principal):
        raise ProtocolError(FORBIDDEN, f"You may not follow {key[0]}/{key[1][:60]}.", msg_id)
    return key


def subscribed_key(
    principal: Principal, subscriptions: Container[StreamKey], msg: ClientMessage
) -> StreamKey | None:
    """The stream an `unsubscribe` names, if it is among `subscriptions`; else None."""
    assert msg.service is not None
    service = services.get(msg.service)
    if service is None:
        return None
    try:
        key = stream_key(principal, service, msg.topic, msg.id)
    except ProtocolError:
        return None
    return key if key in subscriptions else None
