"""App config for the streaming engine: registers its own services and signal bridges."""

from django.apps import AppConfig


class StreamingConfig(AppConfig):
    name = "streaming"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from streaming import control, drain, recorder, signals  # noqa: F401
        from streaming.services import load, notifications  # noqa: F401
