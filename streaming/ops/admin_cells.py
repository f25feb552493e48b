"""Compact cells for the admin's live lists: several fields per column, readable units."""

from __future__ import annotations

from datetime import datetime

from django.contrib import admin
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString

from streaming.delivery.options import resolve
from streaming.models import AuditEntry, StreamOptions, StreamSession, WorkerProcess
from streaming.ops.units import format_bytes, format_duration, format_number, format_percent, format_rate

#: Characters of a session id shown in lists (the whole id is in the cell's title).
SESSION_ID_CHARS = 12


def session_id_cell(session_id: str) -> SafeString:
    """A session id shortened the same way in every list, the full id on hover."""
    if not session_id:
        return format_html("—")
    return format_html('<code title="{}">{}</code>', session_id, session_id[:SESSION_ID_CHARS])


def _time(at: datetime | None) -> str:
    return date_format(timezone.localtime(at), "H:i:s") if at else "—"


def _with_note(main: object, note: object) -> SafeString:
    return (
        format_html('{}<br><small class="quiet">{}</small>', main, note) if note else format_html("{}", main)
    )


@admin.display(description="session", ordering="session_id")
def session(obj: StreamSession) -> SafeString:
    """The id, who (user · application) and, when resumed, the session it continues."""
    who = " · ".join(str(part) for part in (obj.user or "anonymous", obj.application) if part)
    resumed = format_html("<br>resumed {}", session_id_cell(obj.resumed_from)) if obj.resumed_from else ""
    note = format_html("{}{}", who, resumed)
    return _with_note(session_id_cell(obj.session_id), note)


@admin.display(description="connected", ordering="connected_at")
def connected(obj: StreamSession) -> SafeString:
    return _with_note(
        _time(obj.connected_at), " · ".join(filter(None, [str(obj.worker or ""), obj.remote_addr]))
    )


@admin.display(description="subscriptions")
def subscriptions(obj: StreamSession) -> str:
    return ", ".join(obj.subscriptions) or "—"


@admin.display(description="messages in / out", ordering="messages_out")
def messages(obj: StreamSession) -> SafeString:
    counts = f"{format_number(obj.messages_in)} / {format_number(obj.messages_out)}"
    return _with_note(counts, f"{format_rate(obj.rate_in)} / {format_rate(obj.rate_out)}")


@admin.display(description="last active / closed", ordering="closed_at")
def activity(obj: StreamSession) -> SafeString:
    if obj.closed_at is None:
        return _with_note(_time(obj.last_activity_at), "open")
    return _with_note(_time(obj.closed_at), f"closed {obj.close_code or ''}".strip())


@admin.display(description="worker", ordering="worker_id")
def worker(obj: WorkerProcess) -> SafeString:
    return _with_note(obj.worker_id, f"{obj.host} · pid {obj.pid}")


@admin.display(description="connections / subscriptions", ordering="connections")
def worker_load(obj: WorkerProcess) -> str:
    return f"{obj.connections} / {obj.subscriptions}"


@admin.display(description="messages in / out", ordering="messages_out_per_s")
def worker_messages(obj: WorkerProcess) -> str:
    return f"{format_rate(obj.messages_in_per_s)} / {format_rate(obj.messages_out_per_s)}"


@admin.display(description="CPU · memory", ordering="rss_bytes")
def resources(obj: WorkerProcess) -> str:
    return f"{format_percent(obj.cpu_percent)} · {format_bytes(obj.rss_bytes)}"


@admin.display(description="loop lag · layer", ordering="loop_lag_ms")
def latency(obj: WorkerProcess) -> str:
    layer = "—" if obj.layer_latency_ms is None else format_duration(obj.layer_latency_ms / 1000)
    return f"{format_duration(obj.loop_lag_ms / 1000)} · {layer}"


@admin.display(description="heartbeat", ordering="heartbeat_at")
def heartbeat(obj: WorkerProcess) -> str:
    return f"{format_duration((timezone.now() - obj.heartbeat_at).total_seconds())} ago"


@admin.display(description="session", ordering="session_id")
def audit_session(obj: AuditEntry) -> SafeString:
    return session_id_cell(obj.session_id)


@admin.display(description="in force")
def options_in_force(obj: StreamOptions) -> str:
    """The service's options with this row applied: history, latest value, presence, deltas."""
    o = resolve(obj.service, obj.values())
    cap = format_bytes(o.history_max_bytes) if o.history_max_bytes else "no byte cap"
    history = f"history {o.history_max_events} events / {format_duration(o.history_min_seconds)} / {cap}"
    flags = [name for name, on in (("latest value", o.latest), ("deltas", o.delta)) if on]
    return " · ".join([history, f"presence {o.presence}", *flags])
