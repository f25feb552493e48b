"""Daphne's timeout sweep runs on one chunk of the connections per round, and sees them all in a cycle."""

from __future__ import annotations

from typing import Any

from streaming.server.daphne import SWEEP_SLICES, TimeoutSweep


class Reactor:
    def __init__(self) -> None:
        self.scheduled: list[Any] = []

    def callLater(self, delay: float, call: Any) -> None:  # noqa: N802 - Twisted's name
        self.scheduled.append(call)


class Protocol:
    def __init__(self) -> None:
        self.checks = 0

    def check_timeouts(self) -> None:
        self.checks += 1


class Server:
    def __init__(self, protocols: list[Protocol]) -> None:
        self.connections: dict[Protocol, dict[str, Any]] = {p: {} for p in protocols}


def test_the_timeout_sweep_checks_every_connection_once_per_cycle_in_chunks():
    reactor, protocols = Reactor(), [Protocol() for _ in range(12)]
    server = Server(protocols)
    sweep = TimeoutSweep(server, reactor)
    for _ in range(SWEEP_SLICES - 1):  # chunks of 3
        sweep()
    assert [p.checks for p in protocols] == [1] * 12
    assert reactor.scheduled == [sweep] * (SWEEP_SLICES - 1)
