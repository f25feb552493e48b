"""Publish-after-commit for single-row writes (save, delete, admin, shell)."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from widgetapp.widgets.events import publish_change
from widgetapp.widgets.models import Widget


@receiver(post_save, sender=Widget, dispatch_uid="widgets.saved")
def widget_saved(sender: Any, instance: Widget, created: bool, **kwargs: Any) -> None:
    publish_change("created" if created else "updated", instance)


@receiver(post_delete, sender=Widget, dispatch_uid="widgets.deleted")
def widget_deleted(sender: Any, instance: Widget, **kwargs: Any) -> None:
    publish_change("deleted", instance)
