"""Levers on live load from the shell, working while workers are saturated: manage.py streaming_admin."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.services import user_block, user_unblock
from streaming.models import LimitOverride
from streaming.ops import admin_actions as mitigation
from streaming.ops import levers
from streaming.ops.status import table
from streaming.wire.protocol import CLOSE_FORBIDDEN

LIMITS = [name for name, _ in LimitOverride.LIMITS]


class Command(BaseCommand):
    help = "List and disconnect sessions, block users, drain workers, switch services, override limits."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        for name in ("sessions", "disconnect"):
            p = sub.add_parser(name)
            p.add_argument("--user", help="Username.")
            p.add_argument("--service")
            p.add_argument("--worker", help="Worker id, as streaming_status shows it.")
            if name == "disconnect":
                p.add_argument("--session", action="append", default=[], help="Session id (repeatable).")
                p.add_argument("--code", type=int, default=CLOSE_FORBIDDEN)
                p.add_argument("--reason", default="Disconnected by an operator.")
        for name in ("block", "unblock"):
            sub.add_parser(name).add_argument("username")
        sub.add_parser("drain").add_argument("worker")
        for name in ("disable", "enable"):
            sub.add_parser(name).add_argument("services", nargs="+")
        for name in ("limit-set", "limit-clear"):
            p = sub.add_parser(name)
            p.add_argument("limit", choices=LIMITS)
            if name == "limit-set":
                p.add_argument("value", type=float)
            p.add_argument("--for-user", help="Username.")
            p.add_argument("--group")
            p.add_argument("--service", default="")
            p.add_argument("--worker", default="")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        try:
            getattr(self, action.replace("-", "_"))(**options)
        except (ValueError, get_user_model().DoesNotExist, Group.DoesNotExist) as exc:
            raise CommandError(str(exc)) from None

    def sessions(self, *, user: str | None, service: str | None, worker: str | None, **_: Any) -> None:
        found = levers.sessions_open(username=user, service=service, worker_id=worker)
        rows = [
            (
                s.session_id,
                s.user.get_username() if s.user else "-",
                s.worker or "-",
                s.remote_addr,
                " ".join(s.subscriptions),
                f"{s.connected_at:%H:%M:%S}",
            )
            for s in found
        ]
        headers = ["session", "user", "worker", "remote", "subscriptions", "since"]
        self.stdout.write(table(headers, rows) if rows else "no open sessions")

    def disconnect(
        self,
        *,
        user: str | None,
        service: str | None,
        worker: str | None,
        session: list[str],
        code: int,
        reason: str,
        **_: Any,
    ) -> None:
        if not (user or service or worker or session):
            raise CommandError("Name --session, --user, --service or --worker.")
        ids = list(session)
        if user or service or worker:
            ids += [
                s.session_id for s in levers.sessions_open(username=user, service=service, worker_id=worker)
            ]
        count = mitigation.sessions_disconnect(session_ids=ids, code=code, reason=reason, user=None)
        self.stdout.write(f"closing {count} session(s) with {code}")

    def block(self, *, username: str, **_: Any) -> None:
        user_block(user=get_user_model().objects.get(username=username))
        self.stdout.write(f"{username} is inactive: their sessions close with {CLOSE_FORBIDDEN}")

    def unblock(self, *, username: str, **_: Any) -> None:
        user_unblock(user=get_user_model().objects.get(username=username))
        self.stdout.write(f"{username} is active again")

    def drain(self, *, worker: str, **_: Any) -> None:
        mitigation.worker_drain(worker_id=worker, user=None)
        self.stdout.write(f"{worker} is draining")

    def disable(self, *, services: list[str], **_: Any) -> None:
        mitigation.service_configs_ensure()
        self.stdout.write(f"disabled {mitigation.services_switch(names=services, enabled=False, user=None)}")

    def enable(self, *, services: list[str], **_: Any) -> None:
        mitigation.service_configs_ensure()
        self.stdout.write(f"enabled {mitigation.services_switch(names=services, enabled=True, user=None)}")

    def limit_set(self, *, limit: str, value: float, **target: Any) -> None:
        try:
            override = levers.limit_override_set(
                limit=limit, value=value, target=self.target(**target), user=None
            )
        except ValidationError as refused:
            raise CommandError(" ".join(refused.messages)) from None
        self.stdout.write(f"set {override}")

    def limit_clear(self, *, limit: str, **target: Any) -> None:
        count = levers.limit_override_clear(limit=limit, target=self.target(**target), user=None)
        self.stdout.write(f"cleared {count} override(s)")

    def target(
        self, *, for_user: str | None, group: str | None, service: str, worker: str, **_: Any
    ) -> levers.Target:
        return levers.Target(
            user=get_user_model().objects.get(username=for_user) if for_user else None,
            group=Group.objects.get(name=group) if group else None,
            service=service,
            worker_id=worker,
        )
