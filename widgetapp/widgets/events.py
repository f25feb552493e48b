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


def widget_topic(widget_id: int) -> str:
    return f"widget:{widget_id}"


def publish_change(action: str, widget: Widget) -> None:
    """After commit: the change on the `all` stream and on the widget's own, each with its own seq."""
    data = {"action": action, "widget": widget_data(widget)}
    topic = widget_topic(widget.pk)

    def send() -> None:
        publish("widgets", data)
        publish("widgets", data, topic=topic)

    transaction.on_commit(send)
