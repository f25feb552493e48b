"""Streaming state kept in the database: which services are enabled."""

from __future__ import annotations

from django.db import models


class ServiceConfig(models.Model):
    """Admin switch of a registered service; a disabled service ends its live subscriptions."""

    name = models.CharField(max_length=100, unique=True)
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "service"

    def __str__(self) -> str:
        return self.name
