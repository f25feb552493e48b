"""Housekeeping of streaming records: dead workers, old sessions, samples, audit rows, expired tokens."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from oauth2_provider.models import clear_expired, get_access_token_model

from streaming.conf import streaming_settings
from streaming.models import AuditEntry, LoadSample, StreamSession, WorkerProcess
from streaming.wire.protocol import CLOSE_RESTART

#: Close code recorded for sessions of a worker that vanished without closing them (RFC 6455 "abnormal").
CLOSE_ABNORMAL = 1006

Report = Callable[[str], None]


def stale_workers(*, now: datetime, stale_seconds: float) -> QuerySet[WorkerProcess]:
    """Workers still marked alive whose heartbeat is older than `stale_seconds`."""
    cutoff = now - timedelta(seconds=stale_seconds)
    alive = [WorkerProcess.State.RUNNING, WorkerProcess.State.DRAINING]
    return WorkerProcess.objects.filter(heartbeat_at__lt=cutoff, state__in=alive)


def workers_sweep(*, now: datetime, stale_seconds: float, dry_run: bool = False) -> tuple[int, int]:
    """Mark stale workers dead (stopped if they were draining) and close their open sessions.

    Returns (workers, sessions) affected. A draining worker that went quiet finished its restart;
    a running one was killed, so its sessions get the abnormal close code 1006.
    """
    workers = list(stale_workers(now=now, stale_seconds=stale_seconds).values_list("pk", "state"))
    sessions = StreamSession.objects.filter(worker_id__in=[pk for pk, _ in workers], closed_at__isnull=True)
    if dry_run:
        return len(workers), sessions.count() if workers else 0
    closed = 0
    with transaction.atomic():
        for state, new_state, code, reason in (
            (WorkerProcess.State.DRAINING, WorkerProcess.State.STOPPED, CLOSE_RESTART, "worker stopped"),
            (WorkerProcess.State.RUNNING, WorkerProcess.State.DEAD, CLOSE_ABNORMAL, "worker died"),
        ):
            pks = [pk for pk, old in workers if old == state]
            if pks:
                gone = WorkerProcess.objects.filter(pk__in=pks)
                gone.update(state=new_state, connections=0, subscriptions=0)
                closed += StreamSession.objects.filter(worker_id__in=pks, closed_at__isnull=True).update(
                    closed_at=now, close_code=code, close_reason=reason
                )
        # A worker that recorded itself stopped may have exited with a few sockets still closing.
        closed += StreamSession.objects.filter(
            worker__state=WorkerProcess.State.STOPPED,
            worker__heartbeat_at__lt=now - timedelta(seconds=stale_seconds),
            closed_at__isnull=True,
        ).update(closed_at=now, close_code=CLOSE_RESTART, close_reason="worker stopped")
    return len(workers), closed


def stale_report(*, now: datetime, stale_seconds: float, report: Report) -> None:
    """One line per stale worker and per open session of it: what the sweep closes."""
    for worker in stale_workers(now=now, stale_seconds=stale_seconds).order_by("worker_id"):
        report(f"  worker {worker.worker_id} ({worker.state}, last heartbeat {worker.heartbeat_at:%H:%M:%S})")
        for session in StreamSession.objects.filter(worker=worker, closed_at__isnull=True).select_related(
            "user"
        ):
            report(
                f"    session {session.session_id} of {session.user or '-'} from {session.remote_addr or '-'}"
            )


def _delete_older(queryset: QuerySet, field: str, days: float, now: datetime, dry_run: bool) -> int:
    old = queryset.filter(**{f"{field}__lt": now - timedelta(days=days)})
    if dry_run:
        return old.count()
    return old.delete()[1].get(queryset.model._meta.label, 0)


def expired_tokens_clear(*, now: datetime, dry_run: bool = False) -> int:
    """Expired access tokens; DOT's `clear_expired()` deletes them (and stale refresh tokens, grants)."""
    expired = get_access_token_model().objects.filter(expires__lt=now)
    before = expired.count()
    if dry_run:
        return before
    clear_expired()
    return before - expired.count()


def cleanup(
    *, dry_run: bool = False, stale_seconds: float | None = None, report: Report = print, detail: bool = False
) -> dict[str, int]:
    """Every cleanup step with a progress line each (`detail`: also each stale worker and session)."""
    now = timezone.now()
    settings = streaming_settings
    stale = settings.WORKER_STALE_SECONDS if stale_seconds is None else stale_seconds
    note = " (dry run: nothing changed)" if dry_run else ""
    counts: dict[str, int] = {}
    if detail:
        stale_report(now=now, stale_seconds=stale, report=report)
    workers, sessions = workers_sweep(now=now, stale_seconds=stale, dry_run=dry_run)
    counts["stale_workers"], counts["stale_sessions"] = workers, sessions
    report(
        f"stale workers (no heartbeat for {stale:g}s): {workers} marked dead, "
        f"{sessions} open sessions closed{note}"
    )
    steps = [
        (
            "closed_sessions",
            StreamSession.objects.filter(closed_at__isnull=False),
            "closed_at",
            settings.SESSION_RETENTION_DAYS,
        ),
        ("load_samples", LoadSample.objects.all(), "at", settings.LOAD_SAMPLE_RETENTION_DAYS),
        ("audit_entries", AuditEntry.objects.all(), "at", settings.AUDIT_RETENTION_DAYS),
    ]
    for name, queryset, field, days in steps:
        counts[name] = _delete_older(queryset, field, days, now, dry_run)
        report(f"{name.replace('_', ' ')} older than {days} days: {counts[name]} deleted{note}")
    counts["expired_tokens"] = expired_tokens_clear(now=now, dry_run=dry_run)
    report(f"expired access tokens: {counts['expired_tokens']} deleted{note}")
    return counts
