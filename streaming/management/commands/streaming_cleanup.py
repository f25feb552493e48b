"""Stale workers and sessions, old records and expired tokens: manage.py streaming_cleanup [--dry-run]."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from streaming.ops.cleanup import cleanup


class Command(BaseCommand):
    help = (
        "Mark workers without a heartbeat dead and close their sessions; delete closed sessions, "
        "load samples and audit rows past retention, and expired tokens (DOT's clear_expired)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Count what would change; change nothing.")
        parser.add_argument(
            "--stale-seconds",
            type=float,
            default=None,
            help="Heartbeat age that makes a worker dead (default: WORKER_STALE_SECONDS).",
        )

    def handle(
        self, *args: Any, dry_run: bool, stale_seconds: float | None, verbosity: int, **options: Any
    ) -> None:
        counts = cleanup(
            dry_run=dry_run, stale_seconds=stale_seconds, report=self.stdout.write, detail=verbosity >= 2
        )
        summary = ", ".join(f"{name.replace('_', ' ')} {count}" for name, count in counts.items())
        self.stdout.write(self.style.SUCCESS(f"{'Dry run' if dry_run else 'Done'}: {summary}."))
