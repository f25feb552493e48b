"""Background writes (recorder, audit): one transaction that yields to locks instead of deadlocking."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import InterfaceError, OperationalError, connection, transaction

#: Errors that mean the database is away for now (restarting, failing over): retry later, quietly.
#: Django closes the broken connection before the next database_sync_to_async call, which reconnects.
OUTAGE = (OperationalError, InterfaceError)


@contextmanager
def background_transaction() -> Iterator[None]:
    """A transaction that gives up after 500 ms waiting for a lock (a migration, a TRUNCATE).

    Background writers retry at their next flush, so waiting longer would only risk a deadlock.
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '500ms'")
        yield
