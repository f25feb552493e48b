"""Register the live page's OAuth client for the site's public origins: manage.py browser_client."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from widgetapp.widgets.browser_client import browser_client_register


class Command(BaseCommand):
    help = "Create or update the browser page's OAuth client; redirect URIs are <origin>/app/callback."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--origin",
            action="append",
            dest="origins",
            help="A public origin such as https://widgets.example.com (repeatable; default PUBLIC_ORIGINS).",
        )

    def handle(self, *args: Any, origins: list[str] | None, **options: Any) -> None:
        try:
            application = browser_client_register(origins=origins or settings.PUBLIC_ORIGINS)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(f"{application.client_id}: redirect URIs {application.redirect_uris}")
