"""The `widgets` service: live Widget changes; `list` answers a snapshot with its stream position."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from streaming.delivery.publish import ahead
from streaming.services import Principal, Service, register
from widgetapp.widgets.events import widget_data
from widgetapp.widgets.models import Widget


def widgets_snapshot() -> list[dict[str, Any]]:
    return [widget_data(widget) for widget in Widget.objects.all()]


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
    description = "Live changes to Widget records."
    single_topic = True

    async def request(self, principal: Principal, action: str, data: Any) -> Any:
        if action != "list":
            return await super().request(principal, action, data)
        return await widgets_listing()
