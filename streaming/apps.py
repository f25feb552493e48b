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
        from streaming.server.daphne import reactor_of
        from streaming.services import load, notifications  # noqa: F401 - registered by name
        from streaming.sessions import drain, lifecycle, operations, pending, tickets

        # Everything a worker runs from its start, in order.
        on_start(control.start)  # control-bus listener
        on_start(operations.start)  # disabled services, limit overrides and stream options
        on_start(tickets.start)  # stale-ticket marks set while this worker was not listening
        on_start(lambda worker: worker.duties.append(lifecycle.slot_duty()))  # per-owner slots
        on_start(lambda worker: worker.duties.append(pending.failure_duty))  # failure summaries
        on_start(audit.start)  # audit log flushes
        on_start(drain.install_sigterm)  # SIGTERM drains
        on_start(records.start)  # worker, sessions and load in the database
        on_start(load.start)  # the `load` service's samples
        on_start(  # embedded default, under a real server: publishes from other local processes
            lambda worker: reactor_of(worker.loop) and worker.spawn(worker.backend.serve_other_processes())
        )
        on_start(lambda worker: worker.duties.append(worker.hub.presence.tick))  # presence refresh, diffs
