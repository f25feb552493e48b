"""The `notifications` service: a private stream per user (topic = the user's id)."""

from __future__ import annotations

from streaming.services import Principal, Service, register
from streaming.wire.protocol import FORBIDDEN, ProtocolError


@register
class NotificationsService(Service):
    name = "notifications"
    description = "Private notifications of the signed-in user."

    def topic_for(self, principal: Principal, topic: str | None) -> str:
        if principal.user_id is None:
            raise ProtocolError(FORBIDDEN, "Notifications need a user token.")
        own = str(principal.user_id)
        if topic not in (None, own):
            raise ProtocolError(FORBIDDEN, "You may only follow your own notifications.")
        return own
