"""The `notifications` service: a private stream per user (topic = the user's id)."""

from __future__ import annotations

from typing import Any

from streaming.services import Principal, Service, register
from streaming.wire.protocol import BAD_REQUEST, FORBIDDEN, ProtocolError

#: Longest notification text a page shows.
MAX_TEXT = 2000
#: Fields a notification object may carry; the page shows the first of message, text, title.
FIELDS = {"message", "text", "title", "level", "url"}


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

    def publish_topic(self, principal: Principal, topic: str | None, data: Any) -> str:
        if topic is None or not topic.isdigit():
            raise ProtocolError(BAD_REQUEST, "A notification goes to one user: 'topic' is a user id.")
        return super().publish_topic(principal, topic, data)

    def check_event(self, data: Any) -> None:
        """A string, or an object of short strings with at least one of message, text or title."""
        if isinstance(data, str) and len(data) <= MAX_TEXT:
            return
        if (
            isinstance(data, dict)
            and data.keys() <= FIELDS
            and data.keys() & {"message", "text", "title"}
            and all(isinstance(value, str) and len(value) <= MAX_TEXT for value in data.values())
        ):
            return
        raise ProtocolError(
            BAD_REQUEST,
            f"A notification is a string or an object of strings ({', '.join(sorted(FIELDS))}) "
            f"with a message, text or title, each at most {MAX_TEXT} characters.",
        )
