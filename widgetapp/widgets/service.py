"""The `widgets` service: live Widget changes; `list` answers snapshot pages with their stream position."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from accounts.models import User
from streaming.delivery.publish import ahead
from streaming.services import Principal, Service, Topic, TopicFamily, register
from streaming.wire.protocol import BAD_REQUEST, ProtocolError
from widgetapp.widgets.events import widget_data
from widgetapp.widgets.models import Widget
from widgetapp.widgets.permissions import VIEW_WIDGET

#: Rows in one `list` page: the default and the most a client may ask for.
PAGE_SIZE = 500


def widgets_page(*, after: int, limit: int) -> tuple[list[dict[str, Any]], int | None]:
    """Up to `limit` widgets with an id above `after`, by id, and the id to ask for next (or None)."""
    rows = [widget_data(w) for w in Widget.objects.filter(pk__gt=after).order_by("pk")[: limit + 1]]
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1]["id"]
    return rows, None


def _natural(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def page_bounds(data: Any) -> tuple[int, int]:
    """(after, limit) of a `list` request: no data, or `after: null`, is the first page."""
    if data is None:
        return 0, PAGE_SIZE
    if not isinstance(data, dict) or set(data) - {"after", "limit"}:
        raise ProtocolError(BAD_REQUEST, '`list` takes no data or {"after": <id>, "limit": <n>}.')
    after, limit = data.get("after") or 0, data.get("limit", PAGE_SIZE)
    if not _natural(after):
        raise ProtocolError(BAD_REQUEST, "'after' must be a widget id (a non-negative integer).")
    if not _natural(limit) or not 1 <= limit <= PAGE_SIZE:
        raise ProtocolError(BAD_REQUEST, f"'limit' must be an integer from 1 to {PAGE_SIZE}.")
    return after, limit


def may_view_widget(principal: Principal, topic: Topic) -> bool:
    """`widget:<id>`: the token's user has the `widgets.view_widget` permission on that widget."""
    user = User.objects.filter(pk=principal.user_id).first() if principal.user_id is not None else None
    widget = Widget.objects.filter(pk=int(topic.arg)).first()
    return user is not None and widget is not None and user.has_perm(VIEW_WIDGET, widget)


async def widgets_listing(*, after: int = 0, limit: int = PAGE_SIZE) -> dict[str, Any]:
    """One page of widgets (by id, above `after`) with the stream position read before it."""
    # The position is read before the rows: every event up to it is reflected in this page and in
    # every later one; later events arrive as events (apply them in order, as upserts keyed by id).
    # A client builds its snapshot from the first page's position (docs/protocol.md).
    epoch, seq = await ahead(WidgetsService.name, WidgetsService.default_topic)
    widgets, following = await database_sync_to_async(widgets_page)(after=after, limit=limit)
    return {"epoch": epoch, "seq": seq, "widgets": widgets, "next": following}


@register
class WidgetsService(Service):
    name = "widgets"
    description = "Live changes to Widget records: all of them, or one widget."
    topic_families = (
        TopicFamily("all"),
        TopicFamily("widget", arg=r"[1-9][0-9]{0,17}", arg_name="id", authorize=may_view_widget),
    )
    # Widget events come from the Widget model's own code only: a row the page cannot render
    # (or one that does not exist) must never reach live tables from outside.
    http_publish = False
    # Successive states of a widget differ little: subscribers that ask for deltas get them.
    stream_defaults = {"delta": True}

    async def request(self, principal: Principal, action: str, data: Any) -> Any:
        if action != "list":
            return await super().request(principal, action, data)
        after, limit = page_bounds(data)
        return await widgets_listing(after=after, limit=limit)
