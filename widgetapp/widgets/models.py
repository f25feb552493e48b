"""The Widget record."""

from django.db import models


class Widget(models.Model):
    """A thing in the inventory; every change is streamed on the `widgets` service."""

    name = models.CharField(max_length=100)
    colour = models.CharField(max_length=30, default="blue")
    quantity = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name
