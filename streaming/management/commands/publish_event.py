"""Publish one event: manage.py publish_event SERVICE [--topic T] JSON."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from streaming.conf import streaming_settings
from streaming.delivery import options
from streaming.delivery.backend import get_backend
from streaming.delivery.publish import publish
from streaming.sessions.operations import stream_options_rows
from streaming.wire.protocol import ProtocolError


class Command(BaseCommand):
    help = "Publish one event to a service's stream and print its epoch and seq."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("service")
        parser.add_argument("data", help="The event data as JSON.")
        parser.add_argument("--topic", default=None)

    def handle(self, *args: Any, service: str, data: str, topic: str | None, **_: Any) -> None:
        try:
            payload = json.loads(data)
        except ValueError as exc:
            raise CommandError(f"DATA is not valid JSON: {exc}") from None
        options.set_rows(stream_options_rows())  # this process has no worker to load the admin's retention
        if not get_backend().reaches_subscribers():
            raise CommandError(
                "No server would deliver this event: without REDIS_URL, events from other processes go "
                f"through the running server (start it with `make run`; it listens at "
                f"{streaming_settings.LOCAL_SOCKET}), or set REDIS_URL to share Redis with the servers."
            )
        try:
            published = publish(service, payload, topic=topic)
        except ProtocolError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            f"published {published.service}/{published.topic} epoch={published.epoch} seq={published.seq}"
        )
