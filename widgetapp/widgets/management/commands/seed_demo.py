"""`seed_demo`: idempotent demo data: approved groups, users, the browser page's OAuth app, widgets."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts import services
from widgetapp.widgets.browser_client import browser_client_register
from widgetapp.widgets.models import Widget

#: Documented dev-only password of every demo account; set only when DJANGO_DEBUG=1.
DEMO_PASSWORD = "widgetapp-demo"
DEMO_WIDGETS = [("Sprocket", "blue", 12), ("Gizmo", "green", 5), ("Doohickey", "red", 0)]
# username -> (groups, is_staff); "outsider" is in no approved group.
DEMO_USERS = {
    "admin": (["streamers", "operators"], True),
    "demo": (["streamers"], False),
    "outsider": ([], False),
}


class Command(BaseCommand):
    help = "Create (or refresh) the demo data; safe to run repeatedly."

    def handle(self, *args: Any, **options: Any) -> None:
        self.approve_groups()
        for username, (groups, staff) in DEMO_USERS.items():
            self.ensure_user(username, groups, staff)
        try:
            browser_client_register(origins=settings.PUBLIC_ORIGINS)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        for name, colour, quantity in DEMO_WIDGETS:
            Widget.objects.get_or_create(name=name, defaults={"colour": colour, "quantity": quantity})
        self.stdout.write(f"Demo ready. Sign in at {settings.PUBLIC_ORIGINS[0]}/ as demo, admin or outsider.")
        if settings.DEBUG:
            self.stdout.write(f"Dev password for every demo account: {DEMO_PASSWORD}")
        else:
            self.stdout.write("DJANGO_DEBUG is off: no password was set; use `manage.py changepassword`.")

    def approve_groups(self) -> None:
        streamers, _ = Group.objects.get_or_create(name="streamers")
        services.group_approve(
            group=streamers, services=["widgets", "notifications"], publish_services=["widgets"]
        )
        operators, _ = Group.objects.get_or_create(name="operators")
        services.group_approve(group=operators, services=["widgets", "notifications", "load"])

    def ensure_user(self, username: str, groups: list[str], staff: bool) -> None:
        user, created = get_user_model().objects.get_or_create(username=username)
        user.is_staff = user.is_superuser = staff
        user.is_active = True
        if settings.DEBUG:
            user.set_password(DEMO_PASSWORD)
        elif created:
            user.set_unusable_password()
        user.save()
        user.groups.set(Group.objects.filter(name__in=groups))
