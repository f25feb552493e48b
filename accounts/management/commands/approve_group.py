"""`approve_group GROUP [--service S …] [--publish S …] [--revoke]`: manage an approved group."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import services


class Command(BaseCommand):
    help = "Approve a group for streaming (created if missing) with the services its members may use."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("group")
        parser.add_argument(
            "--service", action="extend", nargs="+", default=None, help="Default: every registered service."
        )
        parser.add_argument(
            "--publish", action="extend", nargs="+", default=[], help="Services to publish to."
        )
        parser.add_argument("--revoke", action="store_true", help="Withdraw the approval instead.")

    def handle(
        self,
        *args: Any,
        group: str,
        service: list[str] | None,
        publish: list[str],
        revoke: bool,
        **options: Any,
    ) -> None:
        if revoke:
            return self.revoke(group)
        known = services.known_service_names()
        names = known if service is None else service
        unknown = sorted(set(names + publish) - set(known))
        if unknown:
            raise CommandError(
                f"Unknown service(s): {', '.join(unknown)}. Registered: {', '.join(known) or 'none'}."
            )
        target, created = Group.objects.get_or_create(name=group)
        services.group_approve(group=target, services=names, publish_services=publish)
        what = "Created and approved" if created else "Approved"
        self.stdout.write(f"{what} group {group!r}: stream {names}, publish {sorted(set(publish))}.")

    def revoke(self, name: str) -> None:
        group = Group.objects.filter(name=name).first()
        if group is None or not services.group_revoke(group=group):
            raise CommandError(f"Group {name!r} is not approved.")
        self.stdout.write(f"Revoked the approval of group {name!r}.")
