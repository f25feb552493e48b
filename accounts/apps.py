"""App config for accounts: connects its signals and keeps tokens out of the OAuth libraries' logs."""

import logging

from django.apps import AppConfig

# oauthlib and DOT log authorization codes, refresh tokens and redirect URLs at DEBUG level.
TOKEN_LEAKING_LOGGERS = ("oauthlib", "oauth2_provider")


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts import signals  # noqa: F401 - connects the membership receiver

        # Even with LOG_LEVEL=DEBUG, those DEBUG records are never emitted (child loggers inherit).
        for name in TOKEN_LEAKING_LOGGERS:
            logger = logging.getLogger(name)
            logger.setLevel(max(logger.level, logging.INFO))
