"""Which services a principal may use, and the checks behind `subscribe` and `request`."""

from __future__ import annotations

from streaming import services
from streaming.protocol import FORBIDDEN, SERVICE_DISABLED, UNKNOWN_SERVICE, ProtocolError
from streaming.services import Principal, Service

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
) -> tuple[str, str]:
    try:
        return service.name, service.topic_for(principal, topic)
    except ProtocolError as exc:
        exc.msg_id = msg_id
        raise
