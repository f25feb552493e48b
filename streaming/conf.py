"""The namespaced STREAMING settings with documented defaults, read lazily."""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed

#: Every STREAMING key, its default, and what it means. Unknown keys are an error.
DEFAULTS: dict[str, Any] = {
    # Dotted path of the backend (history, announcements, connection slots, resume memory); empty =
    # Redis when REDIS_URL is set, else the in-process embedded backend.
    "BACKEND": "",
    # Redis URL for stream history and cross-worker fan-out; empty = in-process (embedded default).
    "REDIS_URL": "",
    # Embedded backend only: the Unix socket through which other local processes (manage.py shell,
    # publish_event) publish into the running server; empty = none.
    "LOCAL_SOCKET": "",
    # Prefix of every Redis key this project writes; tests use a unique one per test.
    "REDIS_PREFIX": "widgetapp",
    # Origins allowed to open a browser websocket (exact scheme://host[:port] matches).
    "ALLOWED_ORIGINS": ["http://127.0.0.1:8000", "http://localhost:8000"],
    # Networks (CIDRs) allowed to read /readyz and /metrics without a token; /healthz is public.
    "OPS_ALLOWED_NETWORKS": [
        "127.0.0.0/8",
        "::1/128",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "fc00::/7",
    ],
    # Bearer token that opens /readyz and /metrics from any address; empty = networks only.
    "OPS_TOKEN": "",
    # Accept ?access_token= on the websocket URL. Off: URLs end up in logs.
    "ALLOW_QUERY_STRING_TOKEN": False,
    # Seconds an SSE ticket (from POST /sse/ticket/) may be used for, once, to open /sse/stream/.
    "SSE_TICKET_SECONDS": 30,
    # Seconds a client has to send its first `auth` message.
    "AUTH_TIMEOUT": 10.0,
    # Seconds a socket that presented no token may stay silent before 4401 (AUTH_TIMEOUT still
    # bounds the whole authentication once it has sent something).
    "SILENT_SOCKET_TIMEOUT": 3.0,
    # Unauthenticated sockets one worker (and one remote address on it) may hold; more get 4013.
    "MAX_PENDING_AUTH_PER_WORKER": 1000,
    "MAX_PENDING_AUTH_PER_ADDRESS": 50,
    # Seconds between server heartbeats (`ping` sent by the server; the client answers `pong`).
    "HEARTBEAT_INTERVAL": 25.0,
    # Seconds before token expiry at which the server sends `token_expiring`.
    "TOKEN_EXPIRY_WARNING": 60.0,
    # Seconds a verified token is cached per worker (revocation is pushed, so this is safe).
    "TOKEN_CACHE_SECONDS": 30.0,
    # Lifetime of the resume ticket handed out in `welcome`/`authenticated` (seconds; never beyond
    # the token's expiry); 0 = no tickets. Ticket keys rotate every TICKET_SECONDS.
    "TICKET_SECONDS": 3600.0,
    # History retention per stream: keep the last N events and everything younger than S seconds.
    "HISTORY_MAX_EVENTS": 1000,
    "HISTORY_MIN_SECONDS": 600,
    # Seconds a stream's history and position stay in Redis after its last event (at least
    # HISTORY_MIN_SECONDS); an expired stream starts a new epoch at its next event.
    "STREAM_IDLE_EXPIRY_SECONDS": 7 * 24 * 3600,
    # Hard cap on events kept per stream, whatever their age (protects Redis memory).
    "HISTORY_HARD_MAX_EVENTS": 100_000,
    # Bytes of event frames kept per stream, whatever their age; 0 = no byte cap.
    "HISTORY_MAX_BYTES": 0,
    # Defaults of the per-service stream options (overridden per service in the admin):
    # a subscriber without `since` first gets the newest event, marked `"latest": true`;
    "STREAM_LATEST": False,
    # who follows a stream: "off", "count" (how many) or "users" (how many and who);
    "STREAM_PRESENCE": "off",
    # the service may send deltas instead of whole values.
    "STREAM_DELTA": False,
    # Seconds a follower stays counted in presence unless its worker refreshes it (a killed
    # worker's followers drop out after this); workers refresh every third of it.
    "PRESENCE_TTL": 30.0,
    # Seconds between presence diffs sent to a stream's watchers (joins and leaves are coalesced).
    "PRESENCE_INTERVAL": 1.0,
    # Largest client frame in bytes; bigger closes with 4009.
    "MAX_FRAME_BYTES": 64 * 1024,
    # HTTP publishes per second per token (rate and burst), and per service on one worker; more
    # are answered 429 with Retry-After.
    "PUBLISH_PER_SECOND": 50.0,
    "PUBLISH_BURST": 100,
    "SERVICE_PUBLISH_PER_SECOND": 500.0,
    # Largest HTTP request body in bytes on any path the project serves (the publish API allows
    # MAX_FRAME_BYTES); a bigger one is refused with 413 before it is read.
    "MAX_REQUEST_BODY_BYTES": 1024 * 1024,
    # Client messages per second per connection (token bucket rate and burst).
    "MESSAGES_PER_SECOND": 20.0,
    "MESSAGES_BURST": 40,
    # `request` messages per second per connection (their own token bucket, on top of the above):
    # a request may cost a database query, a ping does not.
    "REQUESTS_PER_SECOND": 5.0,
    "REQUESTS_BURST": 10,
    # Rate-limited messages in a row after which the connection is closed with 4429.
    "RATE_LIMIT_STRIKES": 50,
    # Invalid messages in a row after which the connection is closed with 4400.
    "INVALID_MESSAGE_STRIKES": 20,
    # Subscriptions one connection may hold.
    "MAX_SUBSCRIPTIONS": 50,
    # Open connections one user (or client-credentials application) may hold.
    "MAX_CONNECTIONS_PER_USER": 20,
    # Open connections one worker accepts before answering 4013 (admission control).
    "MAX_CONNECTIONS_PER_WORKER": 10_000,
    # Bytes queued towards one client before it is disconnected with 4013 (slow reader).
    "MAX_OUTBOUND_BYTES": 1024 * 1024,
    # Retry hint sent with 4013 closes, in milliseconds.
    "OVERLOAD_RETRY_MS": 2000,
    # Window over which clients told to `reconnect` spread their return after retry_after_ms
    # (sent as `spread_ms`; each client waits a random share of it).
    "RECONNECT_SPREAD_MS": 2000,
    # Drain window: a draining worker spreads its 4012 closes over this many seconds.
    "DRAIN_SECONDS": 5.0,
    # Seconds between worker heartbeats (load snapshot, session flush, sweep of dead workers).
    "WORKER_HEARTBEAT": 2.0,
    # A worker whose heartbeat is older than this is dead; its sessions get closed.
    "WORKER_STALE_SECONDS": 15.0,
    # Retention of closed sessions, load samples and audit rows, in days.
    "SESSION_RETENTION_DAYS": 7,
    "LOAD_SAMPLE_RETENTION_DAYS": 2,
    "AUDIT_RETENTION_DAYS": 90,
}


class StreamingSettings:
    """Attribute access to STREAMING with defaults; reloaded when tests override settings."""

    def __init__(self, defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self._cached: dict[str, Any] | None = None

    @property
    def user_settings(self) -> dict[str, Any]:
        if self._cached is None:
            configured = getattr(django_settings, "STREAMING", {}) or {}
            unknown = set(configured) - set(self.defaults)
            if unknown:
                raise AttributeError(f"Unknown STREAMING setting(s): {', '.join(sorted(unknown))}")
            self._cached = {**self.defaults, **configured}
        return self._cached

    def __getattr__(self, name: str) -> Any:
        if name not in self.defaults:
            raise AttributeError(f"Invalid STREAMING setting: {name!r}")
        return self.user_settings[name]

    def reload(self) -> None:
        self._cached = None


streaming_settings = StreamingSettings(DEFAULTS)


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting == "STREAMING":
        streaming_settings.reload()


setting_changed.connect(_reload)
