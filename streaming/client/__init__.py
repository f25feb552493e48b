"""Asyncio client for the streaming websocket; its rules are described in docs/clients.md."""

from streaming.client.connection import StreamClient, backoff_delay
from streaming.client.errors import ClientClosed, ConnectionLost, ServerError
from streaming.client.streams import Event, Followers, Reset, State, Stats

__all__ = [
    "ClientClosed",
    "ConnectionLost",
    "Event",
    "Followers",
    "Reset",
    "ServerError",
    "State",
    "Stats",
    "StreamClient",
    "backoff_delay",
]
