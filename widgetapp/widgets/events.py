"""Turning Widget writes into `widgets` events, published once the transaction commits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction

from streaming.delivery.publish import publish

if TYPE_CHECKING:
    from widgetapp.widgets.models import Widget


def widget_data(widget: Widget) -> dict[str, Any]:
    return {
        "id": widget.pk,
        "name": widget.name,
        "colour": widget.colour,
        "quantity": widget.quantity,
        "created_at": widget.created_at.isoformat() if widget.created_at else None,
        "updated_at": widget.updated_at.isoformat() if widget.updated_at else None,
    }


def publish_change(action: str, widget: Widget) -> None:
    data = {"action": action, "widget": widget_data(widget)}
    transaction.on_commit(lambda: publish("widgets", data))
