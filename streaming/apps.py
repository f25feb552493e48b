"""App config for the streaming engine: its services, signal bridges, and what a worker starts."""

from django.apps import AppConfig


class StreamingConfig(AppConfig):
    name = "streaming"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from streaming import signals  # noqa: F401 - model changes reach live connections
        from streaming.bus import audit, control
        from streaming.delivery.worker import on_start
        from streaming.ops import records
        from streaming.services import load, notifications  # noqa: F401 - registered by name
        from streaming.sessions import drain, lifecycle, operations, tickets

        # Everything a worker runs from its start, in order.
        on_start(control.start)  # control-bus listener
        on_start(operations.start)  # disabled services and limit overrides
        on_start(tickets.start)  # stale-ticket marks set while this worker was not listening
        on_start(lambda worker: worker.duties.append(lifecycle.slot_duty()))  # per-owner slots
        on_start(audit.start)  # audit log flushes
        on_start(drain.install_sigterm)  # SIGTERM drains
        on_start(records.start)  # worker, sessions and load in the database
        on_start(load.start)  # the `load` service's samples
