"""The admin's levers: disconnect sessions, drain a worker, switch services, reload limits and options.

Each lever writes an audit entry and reaches every worker through the control bus after commit,
so it takes effect live (within the control bus latency, well under 2 s).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction

from streaming import services
from streaming.bus import control
from streaming.models import AuditEntry, ServiceConfig


def admin_action_audit(*, user: Any, detail: str) -> AuditEntry:
    return AuditEntry.objects.create(kind=AuditEntry.Kind.ADMIN, user=user, detail=detail[:300])


def _after_commit(op: str, **fields: Any) -> None:
    transaction.on_commit(lambda: control.broadcast(op, **fields))


def sessions_disconnect(*, session_ids: Iterable[str], code: int, reason: str, user: Any) -> int:
    """Close these sessions wherever they are open, with `code` (4403 by default in the admin)."""
    ids = sorted(set(session_ids))
    if ids:
        _after_commit("close", sessions=ids, code=code, reason=reason[:120])
        admin_action_audit(user=user, detail=f"disconnect {len(ids)} session(s) with {code}: {reason}")
    return len(ids)


def worker_drain(*, worker_id: str, user: Any) -> None:
    """Drain one worker the way a restart does: reconnect + 4012 to each client over the drain window."""
    _after_commit("drain", worker_id=worker_id)
    admin_action_audit(user=user, detail=f"drain worker {worker_id}")


def services_switch(*, names: Iterable[str], enabled: bool, user: Any) -> int:
    """Enable or disable services; saving each row broadcasts the `service` op (streaming.signals)."""
    switched = 0
    for config in ServiceConfig.objects.filter(name__in=list(names)).exclude(enabled=enabled):
        config.enabled = enabled
        config.save()
        switched += 1
        admin_action_audit(user=user, detail=f"{'enable' if enabled else 'disable'} service {config.name}")
    return switched


def limits_reload(*, user: Any, detail: str) -> None:
    """Every worker re-reads the limit overrides (the `limits` op of streaming.sessions.limits)."""
    _after_commit("limits")
    admin_action_audit(user=user, detail=detail)


def stream_options_reload(*, user: Any, detail: str) -> None:
    """Every worker re-reads the per-service stream options (the `options` control operation)."""
    _after_commit("options")
    admin_action_audit(user=user, detail=detail)


def service_configs_ensure() -> None:
    """A ServiceConfig row for every registered service, so the admin can switch each one."""
    ServiceConfig.objects.bulk_create(
        [ServiceConfig(name=name) for name in services.names()], ignore_conflicts=True
    )
