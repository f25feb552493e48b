"""`issue_token USER --scope "…" [--expires SECONDS] [--application NAME]`: print a new access token."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from oauth2_provider.models import Application

from accounts import services
from accounts.exceptions import AccessRefused


class Command(BaseCommand):
    help = "Issue an access token for an approved user; the token is the last line of the output."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("user", help="Username.")
        parser.add_argument(
            "--scope", required=True, help='Space-separated, e.g. "stream:widgets publish:widgets".'
        )
        parser.add_argument(
            "--expires", type=int, default=None, help="Lifetime in seconds (default: settings)."
        )
        parser.add_argument("--application", default=None, help="Name of the OAuth application to attach.")

    def handle(
        self, *args: Any, user: str, scope: str, expires: int | None, application: str | None, **options: Any
    ) -> None:
        if expires is not None and expires <= 0:
            raise CommandError("--expires must be a positive number of seconds.")
        holder = get_user_model().objects.filter(username=user).first()
        if holder is None:
            raise CommandError(f"Unknown user {user!r}.")
        try:
            token = services.access_token_issue(
                user=holder, scopes=scope.split(), expires_seconds=expires, application=self.app(application)
            )
        except AccessRefused as refused:
            raise CommandError(str(refused)) from refused
        self.stdout.write(token)

    def app(self, name: str | None) -> Application | None:
        if name is None:
            return None
        matches = list(Application.objects.filter(name=name)[:2])
        if len(matches) != 1:
            raise CommandError(f"{'No' if not matches else 'More than one'} application is named {name!r}.")
        return matches[0]
