"""Bench user for ours: an active user in an approved group (run with `manage.py shell -c`)."""

import os

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError

user, _ = get_user_model().objects.get_or_create(username="bench", defaults={"is_active": True})
group, _ = Group.objects.get_or_create(name="bench-streamers")
user.groups.add(group)
try:
    names = sorted({scope.split(":", 1)[1] for scope in os.environ["BENCH_SCOPE"].split()})
    call_command("approve_group", "bench-streamers", "--service", *names, "--publish", *names)
except CommandError as exc:  # approve_group is not written yet: the token fallback still works
    print(f"approve_group unavailable: {exc}")
