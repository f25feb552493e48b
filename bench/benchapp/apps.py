"""App config of the bench services; installed only by bench/ours_settings.py."""

from django.apps import AppConfig


class BenchAppConfig(AppConfig):
    name = "benchapp"

    def ready(self) -> None:
        from benchapp import services  # noqa: F401
