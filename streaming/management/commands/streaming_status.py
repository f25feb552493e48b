"""Workers, sessions, services and load in the terminal: manage.py streaming_status [--watch]."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from streaming.ops.status import status_text


class Command(BaseCommand):
    help = "Print a table of streaming workers, services and load; --watch refreshes it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--watch", action="store_true", help="Redraw every --interval seconds.")
        parser.add_argument("--interval", type=float, default=2.0)
        parser.add_argument(
            "--all", action="store_true", dest="show_all", help="Also workers that stopped long ago."
        )

    def handle(self, *args: Any, watch: bool, interval: float, show_all: bool, **options: Any) -> None:
        while True:
            text = status_text(now=timezone.now(), show_all=show_all)
            self.stdout.write(("\x1b[2J\x1b[H" if watch else "") + text)
            if not watch:
                return
            try:
                time.sleep(interval)
            except KeyboardInterrupt:
                return
