"""The `widgets` service: live Widget changes; `list` answers a snapshot with its stream position."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from accounts.models import User
from streaming.delivery.publish import ahead
from streaming.services import Principal, Service, Topic, TopicFamily, register
from widgetapp.widgets.events import widget_data
from widgetapp.widgets.models import Widget
from widgetapp.widgets.permissions import VIEW_WIDGET


def widgets_snapshot() -> list[dict[str, Any]]:
    return [widget_data(widget) for widget in Widget.objects.all()]


def may_view_widget(principal: Principal, topic: Topic) -> bool:
    """`widget:<id>`: the token's user has the `widgets.view_widget` permission on that widget."""
    user = User.objects.filter(pk=principal.user_id).first() if principal.user_id is not None else None
    widget = Widget.objects.filter(pk=int(topic.arg)).first()
    return user is not None and widget is not None and user.has_perm(VIEW_WIDGET, widget)


async def widgets_listing() -> dict[str, Any]:
    """Every widget with the stream position the rows are consistent with."""
    # The position is read before the rows: every event up to it is reflected in the rows,
    # later ones arrive as events (apply them in order, as upserts keyed by id).
    epoch, seq = await ahead(WidgetsService.name, WidgetsService.default_topic)
    widgets = await database_sync_to_async(widgets_snapshot)()
    return {"epoch": epoch, "seq": seq, "widgets": widgets}


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
        return await widgets_listing()
