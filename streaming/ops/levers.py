"""Command-line levers on live load: find open sessions and set or clear limit overrides.

They work while the workers are saturated: they read and write PostgreSQL and reach the workers
over the control bus (Redis), never through a worker's HTTP port. The other levers are in
streaming/ops/admin_actions.py, shared with the admin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import Group
from django.db.models import QuerySet

from streaming.models import LimitOverride, StreamSession, check_limit_value
from streaming.ops import admin_actions as mitigation


def sessions_open(
    *, username: str | None = None, service: str | None = None, worker_id: str | None = None
) -> QuerySet[StreamSession]:
    """Open sessions, oldest first, of one user, subscribed to one service, or on one worker."""
    sessions = StreamSession.objects.filter(closed_at__isnull=True).select_related("user", "worker")
    if username:
        sessions = sessions.filter(user__username=username)
    if worker_id:
        sessions = sessions.filter(worker__worker_id=worker_id)
    if service:
        ids = [s.pk for s in sessions if any(e.split("/", 1)[0] == service for e in s.subscriptions)]
        sessions = sessions.filter(pk__in=ids)
    return sessions.order_by("connected_at")


@dataclass(frozen=True)
class Target:
    """Whom an override applies to: one user, group, service or worker; everyone when none is named."""

    user: Any = None
    group: Group | None = None
    service: str = ""
    worker_id: str = ""

    def lookup(self) -> dict[str, Any]:
        named = {key: value for key, value in vars(self).items() if value}
        if len(named) > 1:
            raise ValueError("Name at most one of user, group, service, worker.")
        scope = SCOPES[next(iter(named))] if named else LimitOverride.Scope.GLOBAL
        return {"scope": scope, **named}


SCOPES = {
    "user": LimitOverride.Scope.USER,
    "group": LimitOverride.Scope.GROUP,
    "service": LimitOverride.Scope.SERVICE,
    "worker_id": LimitOverride.Scope.WORKER,
}


def limit_override_set(*, limit: str, value: float, target: Target, user: Any) -> LimitOverride:
    """Set `limit` to `value` for `target`; every worker applies it within the control bus latency.

    Raises ValidationError for a value outside LimitOverride.BOUNDS.
    """
    check_limit_value(limit, value)
    override, _ = LimitOverride.objects.update_or_create(
        limit=limit, **target.lookup(), defaults={"value": value}
    )
    mitigation.limits_reload(user=user, detail=f"set limit {override}")
    return override


def limit_override_clear(*, limit: str, target: Target, user: Any) -> int:
    """Remove the override of `limit` for `target`; the STREAMING default applies again."""
    deleted, _ = LimitOverride.objects.filter(limit=limit, **target.lookup()).delete()
    if deleted:
        mitigation.limits_reload(user=user, detail=f"clear limit {limit} ({target.lookup()['scope']})")
    return deleted
