"""Per-service stream options: retention, latest value, presence and deltas, live on every worker.

An option's value comes from the admin's row for the service when it sets one, else from the
service class (`Service.stream_defaults`), else from the STREAMING setting. Each worker keeps the
admin's rows in a table, loaded when it starts and again on the control operation "options".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from streaming import services
from streaming.conf import streaming_settings

PresenceMode = Literal["off", "count", "users"]
PRESENCE_MODES: tuple[PresenceMode, ...] = ("off", "count", "users")


@dataclass(frozen=True, slots=True)
class Options:
    """How one service's streams are kept and served."""

    #: History: keep the last N events and everything younger than S seconds, within B bytes (0 = no cap).
    history_max_events: int
    history_min_seconds: float
    history_max_bytes: int
    #: A subscriber without `since` first gets the newest event, marked `"latest": true`.
    latest: bool
    #: Who follows a stream may be asked: "off", "count" or "users".
    presence: PresenceMode
    #: The service may send deltas instead of whole values.
    delta: bool

    @property
    def shares_presence(self) -> bool:
        return self.presence != "off"

    @property
    def shares_users(self) -> bool:
        return self.presence == "users"


#: The STREAMING key each option defaults to.
SETTING_OF = {
    "history_max_events": "HISTORY_MAX_EVENTS",
    "history_min_seconds": "HISTORY_MIN_SECONDS",
    "history_max_bytes": "HISTORY_MAX_BYTES",
    "latest": "STREAM_LATEST",
    "presence": "STREAM_PRESENCE",
    "delta": "STREAM_DELTA",
}

#: service name -> the options its admin row sets (unset ones are absent).
_rows: dict[str, dict[str, Any]] = {}


def set_rows(rows: Mapping[str, Mapping[str, Any]]) -> None:
    """Replace the table with the admin's rows: service -> {option: value}, None meaning unset."""
    _rows.clear()
    _rows.update({service: dict(values) for service, values in rows.items()})


def resolve(service: str, row: Mapping[str, Any]) -> Options:
    """The options of `service` given the values an admin's row sets (None or absent: the default)."""
    registered = services.get(service)
    defaults = registered.stream_defaults if registered is not None else {}
    values = {}
    for name, setting in SETTING_OF.items():
        value = row.get(name)
        values[name] = (
            value if value is not None else defaults.get(name, getattr(streaming_settings, setting))
        )
    return Options(**values)


def stream_options(service: str) -> Options:
    """The options in force for `service` on this worker."""
    return resolve(service, _rows.get(service, {}))
