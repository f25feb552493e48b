"""Streaming state kept in the database: services, workers, sessions, load, audit and limits."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models


class ServiceConfig(models.Model):
    """Admin switch of a registered service; a disabled service ends its live subscriptions."""

    name = models.CharField(max_length=100, unique=True)
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "service"

    def __str__(self) -> str:
        return self.name


class StreamOptions(models.Model):
    """An admin's stream options for one service; an empty field keeps the default (the service's
    own, else the STREAMING setting). Saving applies them on every worker without a restart."""

    class Presence(models.TextChoices):
        OFF = "off", "off"
        COUNT = "count", "how many follow"
        USERS = "users", "how many and who"

    service = models.CharField(max_length=100, unique=True)
    history_max_events = models.PositiveIntegerField(
        null=True, blank=True, help_text="Keep at least the last N events of each stream."
    )
    history_min_seconds = models.FloatField(
        null=True, blank=True, help_text="Keep every event younger than this many seconds."
    )
    history_max_bytes = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="Drop the oldest events beyond this many bytes per stream (0 = no cap).",
    )
    latest = models.BooleanField(
        null=True, blank=True, help_text="A new subscriber first gets the newest event, marked latest."
    )
    presence = models.CharField(
        max_length=5, choices=Presence.choices, blank=True, help_text="Who follows a stream may be asked."
    )
    delta = models.BooleanField(null=True, blank=True, help_text="The service may send deltas.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["service"]
        verbose_name = "stream options"
        verbose_name_plural = "stream options"

    def __str__(self) -> str:
        return self.service

    def values(self) -> dict[str, object]:
        """The options this row sets (None: keep the default)."""
        return {
            "history_max_events": self.history_max_events,
            "history_min_seconds": self.history_min_seconds,
            "history_max_bytes": self.history_max_bytes,
            "latest": self.latest,
            "presence": self.presence or None,
            "delta": self.delta,
        }


class WorkerProcess(models.Model):
    """A frontend worker process, registered at start and updated by its heartbeat."""

    class State(models.TextChoices):
        RUNNING = "running"
        DRAINING = "draining"
        STOPPED = "stopped"
        DEAD = "dead"

    worker_id = models.CharField(max_length=120, unique=True)
    pid = models.IntegerField()
    host = models.CharField(max_length=200)
    started_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField(db_index=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.RUNNING, db_index=True)
    connections = models.IntegerField(default=0)
    subscriptions = models.IntegerField(default=0)
    messages_in_per_s = models.FloatField(default=0)
    messages_out_per_s = models.FloatField(default=0)
    bytes_out = models.BigIntegerField(default=0)
    cpu_percent = models.FloatField(default=0)
    rss_bytes = models.BigIntegerField(default=0)
    loop_lag_ms = models.FloatField(default=0)
    layer_latency_ms = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-heartbeat_at"]
        verbose_name = "worker"

    def __str__(self) -> str:
        return self.worker_id


class StreamSession(models.Model):
    """One websocket session; open while closed_at is null."""

    session_id = models.CharField(max_length=40, unique=True)
    worker = models.ForeignKey(
        WorkerProcess, null=True, blank=True, on_delete=models.SET_NULL, related_name="sessions"
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    application = models.ForeignKey(
        "oauth2_provider.Application", null=True, blank=True, on_delete=models.SET_NULL
    )
    remote_addr = models.CharField(max_length=64, blank=True)
    user_agent = models.CharField(max_length=200, blank=True)
    origin = models.CharField(max_length=200, blank=True)
    connected_at = models.DateTimeField(db_index=True)
    last_activity_at = models.DateTimeField(null=True, blank=True)
    subscriptions = models.JSONField(default=list, blank=True)
    messages_in = models.BigIntegerField(default=0)
    messages_out = models.BigIntegerField(default=0)
    rate_in = models.FloatField(default=0)
    rate_out = models.FloatField(default=0)
    closed_at = models.DateTimeField(null=True, blank=True, db_index=True)
    close_code = models.IntegerField(null=True, blank=True)
    close_reason = models.CharField(max_length=200, blank=True)
    resumed_from = models.CharField(max_length=40, blank=True)

    class Meta:
        ordering = ["-connected_at"]
        verbose_name = "session"

    def __str__(self) -> str:
        return self.session_id


class LoadSample(models.Model):
    """A worker's load at one moment, for the charts over the last hour."""

    worker = models.ForeignKey(WorkerProcess, on_delete=models.CASCADE, related_name="samples")
    at = models.DateTimeField(db_index=True)
    connections = models.IntegerField(default=0)
    subscriptions = models.IntegerField(default=0)
    messages_in_per_s = models.FloatField(default=0)
    messages_out_per_s = models.FloatField(default=0)
    cpu_percent = models.FloatField(default=0)
    rss_bytes = models.BigIntegerField(default=0)
    loop_lag_ms = models.FloatField(default=0)
    #: Per service: {"published_per_s", "received_per_s", "delivered_per_s"} on this worker.
    per_service = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at"]


class AuditEntry(models.Model):
    """Connects, disconnects, auth failures, denials, limit hits and admin actions. Never a token."""

    class Kind(models.TextChoices):
        CONNECT = "connect"
        DISCONNECT = "disconnect"
        AUTH_FAILED = "auth_failed"
        DENIED = "denied"
        LIMIT = "limit"
        ADMIN = "admin_action"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    application = models.ForeignKey(
        "oauth2_provider.Application", null=True, blank=True, on_delete=models.SET_NULL
    )
    session_id = models.CharField(max_length=40, blank=True)
    remote_addr = models.CharField(max_length=64, blank=True)
    origin = models.CharField(max_length=200, blank=True)
    close_code = models.IntegerField(null=True, blank=True)
    detail = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-at"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit log"


class LimitOverride(models.Model):
    """An admin's live override of one STREAMING limit, for everyone or one user/group/service/worker."""

    class Scope(models.TextChoices):
        GLOBAL = "global"
        USER = "user"
        GROUP = "group"
        SERVICE = "service"
        WORKER = "worker"

    LIMITS = [
        ("MAX_FRAME_BYTES", "Max frame bytes"),
        ("MESSAGES_PER_SECOND", "Client messages per second"),
        ("MESSAGES_BURST", "Client message burst"),
        ("REQUESTS_PER_SECOND", "Requests per second"),
        ("REQUESTS_BURST", "Request burst"),
        ("MAX_SUBSCRIPTIONS", "Subscriptions per connection"),
        ("MAX_CONNECTIONS_PER_USER", "Connections per user"),
        ("MAX_CONNECTIONS_PER_WORKER", "Connections per worker"),
        ("MAX_OUTBOUND_BYTES", "Outbound buffer bytes per connection"),
    ]

    #: The values an override may take: below the minimum a limit locks everyone out (or divides by
    #: zero), above the maximum one connection could hold a worker's memory.
    BOUNDS: dict[str, tuple[float, float]] = {
        "MAX_FRAME_BYTES": (256, 1024 * 1024),
        "MESSAGES_PER_SECOND": (0.1, 1000),
        "MESSAGES_BURST": (1, 10_000),
        "REQUESTS_PER_SECOND": (0.1, 1000),
        "REQUESTS_BURST": (1, 10_000),
        "MAX_SUBSCRIPTIONS": (1, 10_000),
        "MAX_CONNECTIONS_PER_USER": (1, 100_000),
        "MAX_CONNECTIONS_PER_WORKER": (1, 100_000),
        "MAX_OUTBOUND_BYTES": (16 * 1024, 64 * 1024 * 1024),
    }

    limit = models.CharField(max_length=40, choices=LIMITS)
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.GLOBAL)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE)
    group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.CASCADE)
    service = models.CharField(max_length=100, blank=True)
    worker_id = models.CharField(max_length=120, blank=True)
    value = models.FloatField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["limit", "scope"]
        verbose_name = "limit"

    def __str__(self) -> str:
        return f"{self.limit}={self.value:g} ({self.scope})"

    def clean(self) -> None:
        check_limit_value(self.limit, self.value)


def check_limit_value(limit: str, value: float) -> None:
    """Raise ValidationError unless `value` lies within LimitOverride.BOUNDS of `limit`."""
    low, high = LimitOverride.BOUNDS.get(limit, (float("-inf"), float("inf")))
    if not low <= value <= high:
        raise ValidationError({"value": f"{limit} must be between {low:g} and {high:g}."})
