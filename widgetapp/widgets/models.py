"""The Widget record."""

from typing import Any

from django.conf import settings
from django.db import models


class WidgetQuerySet(models.QuerySet):
    """Bulk write paths publish too (they bypass save() and its signals)."""

    def update(self, **kwargs: Any) -> int:
        from widgetapp.widgets.events import publish_change

        ids = list(self.values_list("pk", flat=True))
        count = super().update(**kwargs)
        for widget in Widget.objects.filter(pk__in=ids):
            publish_change("updated", widget)
        return count

    def bulk_create(self, objs: Any, *args: Any, **kwargs: Any) -> list[Any]:
        from widgetapp.widgets.events import publish_change

        created = super().bulk_create(objs, *args, **kwargs)
        for widget in created:
            if widget.pk is not None:
                publish_change("created", widget)
        return created


class Widget(models.Model):
    """A thing in the inventory; every change is streamed on the `widgets` service."""

    name = models.CharField(max_length=100)
    colour = models.CharField(max_length=30, default="blue")
    quantity = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    viewers = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="viewable_widgets",
        help_text="Users who may view this widget and follow its own stream (staff always may).",
    )

    objects = WidgetQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name
