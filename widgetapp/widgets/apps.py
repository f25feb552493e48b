"""App config for the Widget domain."""

from django.apps import AppConfig


class WidgetsConfig(AppConfig):
    name = "widgetapp.widgets"
    label = "widgets"
    default_auto_field = "django.db.models.BigAutoField"
