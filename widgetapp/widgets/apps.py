"""App config for the Widget domain: plugs its service and publish-after-commit into streaming."""

from django.apps import AppConfig


class WidgetsConfig(AppConfig):
    name = "widgetapp.widgets"
    label = "widgets"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from widgetapp.widgets import service, signals  # noqa: F401
