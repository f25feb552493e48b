"""Exceptions the streaming client raises: a refused message, a lost connection, a stopped client."""

from __future__ import annotations


class ServerError(Exception):
    """An `error` reply to one of our messages: a code the caller can act on and a sentence."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ConnectionLost(Exception):
    """The connection dropped before the reply came; the request may or may not have run."""


class ClientClosed(Exception):
    """The client stopped: a terminal close (4400/4401/4403), a refused handshake, or `close()`."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"connection closed ({code}): {reason}")
        self.code = code
        self.reason = reason
